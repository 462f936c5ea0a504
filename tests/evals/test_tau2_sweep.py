"""The τ² suites end to end on Ray: ``--model oracle`` replays each task's ground-truth actions
through the session's own MCP server and database and scores 1.0 on every task that has them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.evals.tau2.task import gold_actions, tasks
from troupe.runtime.api import Troupe

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"


def suite_copy(domain: str, folder: Path) -> Path:
    """The shipped suite with its MCP server started by this interpreter (``python`` may not be on PATH)."""
    source = SUITES / f"tau2_{domain}"
    folder.mkdir(parents=True)
    for name in ("suite.yaml", "cases.jsonl"):
        shutil.copy(source / name, folder / name)
    team = yaml.safe_load((source / "team.yaml").read_text())
    assert team["mcpServers"]["tau2"]["command"] == "python"
    team["mcpServers"]["tau2"]["command"] = sys.executable
    (folder / "team.yaml").write_text(yaml.safe_dump(team))
    return folder / "suite.yaml"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)  # every task of the domain, each a session with its own MCP server (retail: 114)
@pytest.mark.parametrize("domain", ["mock", "airline", "retail"])
async def test_the_oracle_scores_one_on_every_task_with_ground_truth_actions(
        troupe_ray: Troupe, lake: Path, tmp_path: Path, domain: str) -> None:
    suite = load_suite(suite_copy(domain, tmp_path / domain))
    sweep = Sweep(troupe_ray, suite, model="oracle", concurrency=8)
    await sweep.run()
    rows = {r["case_id"]: r for r in results_table(lake, sweep.run_id).to_pylist()}
    assert set(rows) == set(tasks(domain))
    with_actions = [t for t, task in tasks(domain).items() if gold_actions(task)]
    bad = [(t, rows[t]["status"], rows[t]["grades"]) for t in with_actions if rows[t]["score"] != 1.0]
    assert bad == []
    assert all(rows[t]["tool_calls"] == len(gold_actions(tasks(domain)[t])) for t in with_actions)
