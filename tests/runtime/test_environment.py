"""Per-session environments, in process: ``scope: session`` MCP servers (one process per session,
closed when it ends, ``${...}`` expanded per session), the sample dir, fixture and hooks, and ordering
(``sequential: true`` servers, ``parallel_tool_calls: false`` agents)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.processes import processes_with
from tests.runtime.teams import call
from tests.support.state_mcp_server import command
from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, parse_team
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.mcp.server_params import session_config


def team(server: dict[str, Any], script: list[dict[str, Any]], *, tools: list[str] | None = None,
         environment: dict[str, Any] | None = None, **agent: Any) -> Any:
    cfg: dict[str, Any] = {
        "name": "env", "entry": "lead", "default_model": "m", "placement": "packed",
        "mcpServers": {"kv": server},
        "models": {"m": {"provider": "scripted", "scripts": {"lead": script}}},
        "agents": [{"id": "lead", "tools": tools or ["kv__*"], "permissions": {"level": "L2"}, **agent}],
    }
    if environment is not None:
        cfg["environment"] = environment
    return parse_team(cfg)


def tool_results(lake: Path, session_id: str) -> list[str]:
    sql = (f"select payload from events where session_id='{session_id}' and type in ('tool.result','tool.error') "
           "order by ts, seq")
    return [json.loads(r["payload"])["result"] for r in query(lake, sql).to_pylist()]


def events_of(lake: Path, session_id: str, kind: str) -> list[dict[str, Any]]:
    sql = f"select payload, status from events where session_id='{session_id}' and type='{kind}' order by ts, seq"
    return [{**json.loads(r["payload"]), "status": r["status"]} for r in query(lake, sql).to_pylist()]


def test_session_config_expands_session_values_and_rejects_unknown_names() -> None:
    cfg = McpServerConfig(command="srv", args=["--dir", "${sample_dir}/db", "--case=${case_id}", "${HOME}"],
                          cwd="${sample_dir}", env={"S": "${session_id}", "K": "${SECRET_FROM_ENV}"}, scope="session")
    own = session_config("kv", cfg, {"session_id": "s1", "sample_dir": "/tmp/x/s1", "case_id": "c7", "sample": "2"})
    assert own.args[:2] == ["--dir", "/tmp/x/s1/db"] and own.args[2] == "--case=c7" and "${" not in own.args[3]
    assert own.cwd == "/tmp/x/s1" and own.env == {"S": "s1", "K": "${SECRET_FROM_ENV}"}  # secrets: where it starts
    bad = cfg.model_copy(update={"args": ["--x", "${nope_not_a_var}"]})
    with pytest.raises(ConfigError, match="nope_not_a_var"):
        session_config("kv", bad, {"session_id": "s1"})


async def test_two_samples_of_one_case_each_see_only_their_own_state(troupe: Troupe, lake: Path) -> None:
    marker = "envtest-own-state"
    server = {**command("--marker", marker, "--state-dir", "${sample_dir}"), "scope": "session"}
    script = [{"tool_calls": [call("kv__incr", key="n")]}, {"tool_calls": [call("kv__incr", key="n")]},
              {"tool_calls": [call("kv__get", key="n")]}, {"text": "done"}]
    cfg = team(server, script)
    results = await asyncio.gather(*(troupe.run_packed(cfg, "go", timeout=90, labels={"case_id": "c1", "sample": str(k)})
                                     for k in range(2)))
    for result in results:
        assert result.status is SessionStatus.COMPLETED, result.error
    await troupe.backend.flush()
    for result in results:
        # A shared server would have counted to 3 or 4 in one of them.
        assert tool_results(lake, result.session_id) == ["1", "2", "2"]
    assert not processes_with(marker), "a session-scoped server outlived its session"


async def test_hooks_seed_and_capture_the_final_state(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    (fixture / "README").write_text("from the fixture")
    env = {"sample_dir": str(tmp_path / "samples"), "fixture": str(fixture), "params": {"start": 10},
           "setup": "tests.support.env_hooks:seed", "teardown": "tests.support.env_hooks:capture"}
    server = {**command("--state-dir", "${sample_dir}"), "scope": "session"}
    cfg = team(server, [{"tool_calls": [call("kv__incr", key="n")]}, {"text": "done"}], environment=env)
    result = await troupe.run_packed(cfg, "go", timeout=90, labels={"case_id": "case-9", "sample": "3"})
    assert result.status is SessionStatus.COMPLETED, result.error
    sample_dir = tmp_path / "samples" / str(result.session_id)
    assert result.sample_dir == str(sample_dir.resolve())
    assert result.final_state == {"state": {"n": 11, "case": "case-9"}, "case_id": "case-9", "sample": "3",
                                  "session_id": str(result.session_id)}
    assert (sample_dir / "README").read_text() == "from the fixture"
    await troupe.backend.flush()
    [opened] = events_of(lake, result.session_id, "environment.opened")
    assert opened["status"] == "ok" and opened["servers"] == ["kv"] and opened["labels"] == {"case_id": "case-9", "sample": "3"}
    [captured] = events_of(lake, result.session_id, "environment.captured")
    assert captured["final_state"] == result.final_state


async def test_a_failing_setup_fails_the_session_and_still_tears_down(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    env = {"sample_dir": str(tmp_path), "setup": "tests.support.env_hooks:broken", "teardown": "tests.support.env_hooks:capture"}
    cfg = team(command(), [{"text": "never asked"}], environment=env)
    result = await troupe.run_packed(cfg, "go", timeout=60)
    assert result.status is SessionStatus.FAILED
    assert "environment setup failed: RuntimeError: the database would not load" in (result.error or "")
    assert (tmp_path / str(result.session_id) / "torn_down").exists()
    assert result.final_state is not None
    await troupe.backend.flush()
    assert events_of(lake, result.session_id, "environment.opened")[0]["status"] == "error"
    assert len(events_of(lake, result.session_id, "environment.captured")) == 1
    # An interactive session: opening it fails, clearly.
    with pytest.raises(Exception, match="the database would not load"):
        await troupe.run(cfg, "go", timeout=60)


async def test_sequential_server_and_serial_agent_keep_call_order(troupe: Troupe, tmp_path: Path) -> None:
    for i, (extra, agent) in enumerate((({"sequential": True}, {}), ({}, {"parallel_tool_calls": False}))):
        log = tmp_path / f"arrivals{i}.log"
        calls = [call("kv__record", n=k) for k in range(8)]
        cfg = team({**command("--log", str(log)), **extra}, [{"tool_calls": calls}, {"text": "done"}], **agent)
        for _ in range(5):
            log.unlink(missing_ok=True)
            result = await troupe.run(cfg, "go", timeout=60)
            assert result.status is SessionStatus.COMPLETED, result.error
            assert log.read_text().split() == [str(k) for k in range(8)]
