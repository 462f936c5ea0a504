"""Secrets on Ray, dedicated placement, checkpointed: the team's secrets are read on the node that
uses them (the agent's host actor, the node's MCP actor), the tools get the right values, the model
sees ``[redacted]``, and no value is in the lake, the checkpoints, the workspace or the Ray logs the
session wrote. The local version and the unit tests are in tests/runtime/test_secrets.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import ray

from tests.runtime.test_secrets import (
    ENV,
    check_shown,
    files_holding,
    lake_rows_holding,
    new_secret,
    plant,
    vault_team,
)
from tests.runtime.test_secrets_tools import check_reveal, reveal_team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = pytest.mark.ray

# Ray's workers inherit the environment the driver had when Ray started (the session-wide fixture
# starts it after collection): the secret is planted now, at import, so the actors see it.
os.environ.setdefault(ENV, new_secret())


def ray_session_dir() -> Path:
    node = ray._private.worker._global_node  # the session's own folder: logs, sockets, runtime resources
    assert node is not None
    return Path(node.get_session_dir_path())


@pytest.mark.parametrize("mcp_only", [False, True], ids=["tool-and-mcp", "mcp-only"])
async def test_a_planted_secret_reaches_its_tools_and_nothing_the_session_wrote_on_ray(
        ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mcp_only: bool) -> None:
    """``mcp-only``: the agent's host never asks for a secret itself; it must still scrub the MCP
    result's echo from its events (it registered the team's secrets when the session started)."""
    started = time.time() - 1
    bank = os.environ[ENV]
    _, vault, server, vault_file = plant(tmp_path, monkeypatch)
    monkeypatch.setenv(ENV, bank)  # plant() drew a new one for this process only: the actors have this one
    run = tmp_path / "run"
    lake = run / "lake"
    troupe = await Troupe.connect(lake=lake)  # checkpoints on (the default on Ray)
    try:
        cfg = vault_team(server, vault_file, run / "workspaces", mcp_only=mcp_only)
        result = await troupe.run(cfg, "pay the bill", timeout=120, placement="dedicated")
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    check_shown(result.reply, bank, vault)
    assert any((lake / "checkpoints").rglob("*.json")), "the session was not checkpointed"
    if not mcp_only:
        assert (run / "workspaces" / result.session_id / "receipt.txt").exists()
    assert files_holding(run, [bank, vault]) == []
    assert lake_rows_holding(lake, [bank, vault]) == []
    logs = ray_session_dir()
    assert any(p.is_file() and p.stat().st_mtime >= started for p in (logs / "logs").rglob("*")), "no Ray log written"
    assert files_holding(logs, [bank, vault], since=started) == []
    results = query(lake, "select payload from events where type = 'tool.result'").to_pylist()
    assert len(results) == (1 if mcp_only else 2) and all("[redacted]" in r["payload"] for r in results)


async def test_io_and_cpu_tools_read_a_secret_by_name_on_ray(ray_session: None, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The cpu tool runs as a Ray task, the io tools on the node's tool worker: each gets the session's
    references with the call and reads the value there (``secrets.get``); ``io_env`` reads the variable
    itself, so only the scheduler actor (which registered the team's secrets) keeps it out of its records."""
    started = time.time() - 1
    bank = os.environ[ENV]
    monkeypatch.setenv(ENV, bank)
    run = tmp_path / "run"
    troupe = await Troupe.connect(lake=run / "lake")  # checkpoints on: io/cpu results are recorded by key
    try:
        result = await troupe.run(reveal_team(run / "workspaces"), "go", timeout=120, placement="dedicated")
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    check_reveal(result.reply, run / "lake", bank)
    cpu = json.loads(json.loads(str(result.reply))["cpu_secret"])
    assert cpu["where"] != f"pid {os.getpid()}"  # it ran elsewhere: a Ray task
    assert files_holding(run, [bank]) == []
    assert files_holding(ray_session_dir(), [bank], since=started) == []
