"""The converted BFCL suites end to end: a sweep with the oracle model (answering each case from its
ground truth) must score 1.0 on every case. This checks the conversion, the declared tools, the
sweep and the tool-call grader together, not a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"


@pytest.mark.parametrize("category", ["simple", "multiple", "parallel", "parallel_multiple"])
async def test_every_bfcl_case_scores_one_with_the_oracle(troupe: Troupe, lake: Path, category: str) -> None:
    suite = load_suite(SUITES / f"bfcl_{category}" / "suite.yaml")
    sweep = Sweep(troupe, suite, model="oracle", concurrency=64)
    await sweep.run()
    rows = results_table(lake, sweep.run_id).to_pylist()
    assert len(rows) == len(suite.cases) >= 200
    bad = [(r["case_id"], r["status"], r["grades"]) for r in rows if r["score"] != 1.0 or not r["passed"]]
    assert bad == []
    assert all(r["tool_calls"] >= 1 for r in rows)
