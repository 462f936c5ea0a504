"""Dashboard monitoring end to end: named actors, named tasks and the troupe_* metrics, read the way a
person would (Ray's state API and the Prometheus endpoint) on a Ray of its own with the dashboard.

The run itself is tests/support/dashboard_run.py, in a subprocess (its own Ray; the session-wide
test Ray has no dashboard and is never touched from there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.dashboard]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("dashboard") / "report.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TROUPE_BLOCK_REMOTE_MODELS": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "tests.support.dashboard_run", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    return json.loads(out.read_text())


def _check(phase: dict[str, Any]) -> None:
    assert phase["seen"] == phase["expected"], f"after {phase['waited_s']}s; series present: {phase['series']}"


@pytest.mark.timeout(480)
def test_metrics_while_the_session_runs(report: dict[str, Any]) -> None:
    """LLM calls, tokens and latency by team/agent/model; the refused tool call and its denial;
    the running session; the message waiting in the busy agent's mailbox."""
    _check(report["running"])


@pytest.mark.timeout(480)
def test_metrics_after_the_session_finished(report: dict[str, Any]) -> None:
    assert report["status"] == "completed"
    _check(report["finished"])


@pytest.mark.timeout(480)
def test_sweep_progress_and_its_llm_calls(report: dict[str, Any]) -> None:
    assert report["sweep_passed"] == 4
    _check(report["sweep"])


@pytest.mark.timeout(480)
def test_tasks_are_named_for_what_ran(report: dict[str, Any]) -> None:
    tasks = report["tasks_running"]
    assert set(tasks) == {"llm:lead", "tool:wait_for_file"}, tasks
    assert "RUNNING" in tasks["tool:wait_for_file"]  # read while the tool blocked


@pytest.mark.timeout(480)
def test_actors_are_named_for_their_session_agent_or_role(report: dict[str, Any]) -> None:
    sid = report["session"]
    named = {a["name"]: a["class_name"] for a in report["actors"]}
    for agent in ("lead", "session", "blackboard", "tasks"):
        assert named.get(f"{sid}/{agent}") == "HostActor", named
    assert named[report["scheduler"]] == "SchedulerActor" and report["scheduler"].startswith("troupe-scheduler-")
    assert named[report["event_log"]] == "EventLogActor" and report["event_log"].startswith("troupe-eventlog-")
    by_class = {cls: name for name, cls in named.items()}
    assert by_class["ToolWorkerActor"].startswith("troupe-tools-")
    assert by_class["LLMWorkerActor"].startswith("troupe-llm-")
    after = {a["name"]: a["class_name"] for a in report["actors_after_sweep"]}
    assert any(n.startswith("troupe-pool-") and c == "HostActor" for n, c in after.items()), after
    assert not any(n.startswith(f"{sid}/") for n in after)  # the dedicated hosts went with the session
    assert all(n.startswith("troupe-") for n in after), after
