"""``ray job submit -- troupe run`` and ``-- troupe eval run`` against a private Ray head, as a user runs them.

The head (tests/support/ray_head.py) has its own ports and temp dir; this process only talks to it
over HTTP (the ``ray job`` CLI, ``JobSubmissionClient``), never with ``ray.init``, so the session-wide
Ray of the other tests is untouched. The jobs run deterministic models and write to this test's lake.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_TEAM, REPO
from tests.support.eval_suites import write_suite
from tests.support.lakes import rows
from tests.support.ray_head import RayHead, ray_head  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.job, pytest.mark.slow, pytest.mark.timeout(300)]

JOB_TIMEOUT_S = 180


def submit(head: RayHead, *entrypoint: str, runtime_env: list[str]) -> tuple[str, str]:
    """Submit a job with the ``ray`` CLI, wait for it; return its final status and its logs."""
    from ray.job_submission import JobSubmissionClient

    job_id = f"troupe-test-{uuid.uuid4().hex[:8]}"
    ray = str(Path(sys.executable).with_name("ray"))
    done = subprocess.run([ray, "job", "submit", "--address", head.dashboard_url, "--submission-id", job_id,
                           *runtime_env, "--", *entrypoint],
                          cwd=REPO, env=head.env(), capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert job_id in done.stdout + done.stderr, done.stderr[-3000:]
    client = JobSubmissionClient(head.dashboard_url)
    return str(client.get_job_status(job_id)), client.get_job_logs(job_id)


def test_troupe_run_as_a_job_logs_its_progress_and_fills_the_lake(ray_head: RayHead, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    status, logs = submit(ray_head, "troupe", "run", str(EXAMPLE_TEAM.relative_to(REPO)), "What is 1234 * 5678?",
                          "--lake", str(lake), runtime_env=["--runtime-env", "examples/job_runtime_env.yaml"])
    assert status == "SUCCEEDED", logs[-3000:]
    # One line per event, as the session goes; then the reply and where the events are.
    assert re.search(r"\[session\] session s-\w+ started \(run r-\w+, dedicated\)", logs), logs[-3000:]
    for line in ("[lead] llm scripted", "[worker_a] tool calculator ok: 7006652",
                 "[worker_b.checker] spawned by worker_b", "[session] session finished: completed",
                 "1234 * 5678 = 7006652"):
        assert line in logs, (line, logs[-3000:])
    found = re.search(r"session (s-\w+)  run (r-\w+)  status completed  lake (\S+)", logs)
    assert found and Path(found[3]) == lake, logs[-2000:]
    events = rows(lake, f"select type, count(*) n from events where session_id = '{found[1]}' group by type")
    counts = {r["type"]: r["n"] for r in events}
    assert counts["session.started"] == 1 and counts["session.finished"] == 1, counts
    assert counts["tool.call"] == 11 and counts["llm.response"] >= 9, counts


def test_troupe_eval_run_as_a_job_writes_its_results(ray_head: RayHead, tmp_path: Path) -> None:
    from troupe.evals.results import list_runs, results_table

    lake = tmp_path / "lake"
    suite = write_suite(tmp_path / "suite")
    env = {"working_dir": str(REPO), "env_vars": {"TROUPE_LAKE": str(lake)}}
    status, logs = submit(ray_head, "troupe", "eval", "run", str(suite), "--concurrency", "4",
                          runtime_env=["--runtime-env-json", json.dumps(env)])
    assert status == "SUCCEEDED", logs[-3000:]
    # Progress as whole lines (no terminal redraws), the last one complete, then the summary table.
    assert "\r" not in logs
    assert re.search(r"\[eval\] suite small: run \S+, lake " + re.escape(str(lake)), logs), logs[-3000:]
    assert re.search(r"\[eval\] 6/6 · 0 running · \d+ failed · 3 passed", logs), logs[-3000:]
    assert re.search(r"^all\s+6\s+3\s", logs, re.MULTILINE), logs[-3000:]
    [run] = list_runs(lake)
    assert run.status == "finished"
    table = results_table(lake, run.run_id).to_pylist()
    assert sorted((r["case_id"], r["passed"]) for r in table) == [
        ("bad-override", False), ("crash", False), ("ok-1", True), ("ok-2", True), ("ok-3", True), ("wrong", False)]
    sessions = {r["session_id"] for r in table if r["session_id"]}  # a bad override starts no session
    assert len(sessions) == 5
    events = rows(lake, "select distinct session_id from events "
                        f"where run_id = '{run.run_id}' and type = 'session.finished'")
    assert {r["session_id"] for r in events} == sessions
