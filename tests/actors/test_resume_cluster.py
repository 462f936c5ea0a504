"""The whole Ray cluster stops mid-session; the session is resumed on a fresh cluster from its
checkpoints (``troupe resume``) and ends as an undisturbed one would, each side effect once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.support.ray_head import start_head
from benchmarks.support.recovery_team import expected_reply, ledger_items
from tests.conftest import REPO
from troupe.runtime.eventlog.lake import query

pytestmark = [pytest.mark.job, pytest.mark.slow, pytest.mark.timeout(400)]
TROUPE = str(Path(sys.executable).with_name("troupe"))


def troupe_json(*args: str, env: dict[str, str]) -> object:
    out = subprocess.run([TROUPE, *args, "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_a_session_survives_a_cluster_stop_and_resumes_on_a_fresh_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake, ledger = tmp_path / "lake", tmp_path / "ledger"
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the heads' workers import the test team's model
    monkeypatch.setenv("TROUPE_CHAOS_STEP_S", "0.4")  # a session of several seconds, to stop it halfway
    head = start_head()
    driver = subprocess.Popen([sys.executable, "-m", "tests.support.resume_driver", str(lake), str(ledger), "c"],
                              env={**head.base_env, "RAY_ADDRESS": head.gcs_address}, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert driver.stdout is not None
        session_id = driver.stdout.readline().strip()
        assert session_id.startswith("s-"), "the driver did not start a session"
        deadline = time.monotonic() + 90
        while not ledger_items(ledger) and time.monotonic() < deadline:  # a worker applied its effect
            time.sleep(0.05)
        assert ledger_items(ledger), "the session made no progress"
    finally:
        head.stop()  # the whole cluster: every actor and worker process of the session goes
        driver.kill()
        driver.wait(30)
    [listed] = troupe_json("sessions", "list", "--lake", str(lake), env=head.base_env)  # type: ignore[misc]
    assert (listed["session_id"], listed["status"]) == (session_id, "running")

    fresh = start_head()
    try:
        out = troupe_json("resume", session_id, "--lake", str(lake),
                          env={**fresh.base_env, "RAY_ADDRESS": fresh.gcs_address})
    finally:
        fresh.stop()
    assert isinstance(out, dict)
    assert (out["status"], out["reply"]) == ("completed", expected_reply("c"))
    assert sorted(ledger_items(ledger)) == ["c-worker_a", "c-worker_b"]  # no side effect twice
    kinds = query(lake, f"select type, count(*) as n from events where session_id = '{session_id}' "
                        "and type in ('session.started', 'session.resumed', 'session.finished') group by type")
    assert dict(zip(kinds["type"].to_pylist(), kinds["n"].to_pylist(), strict=True)) == {
        "session.started": 1, "session.resumed": 1, "session.finished": 1}
