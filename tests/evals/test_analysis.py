"""Eval analysis: Wilson intervals, per-cell summaries, per-case rates, compare and its gates."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from tests.evals.test_results import M0, M1, M2, M3, Built, build_lake
from troupe.evals.analysis import (
    OVERALL,
    Z95,
    cell_label,
    check_gates,
    compare,
    per_case,
    summary,
    wilson_interval,
)
from troupe.evals.models import Gates
from troupe.evals.results import UnknownRunError


@pytest.fixture
def built(lake: Path) -> Built:
    return build_lake(lake)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (8, 10, 0.4902, 0.9433),  # textbook values (e.g. Newcombe 1998; statsmodels method="wilson")
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 8, 0.3057, 0.8632),
        (1, 1, 0.2065, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got is not None
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_of_nothing() -> None:
    assert wilson_interval(0, 0) is None


def test_cell_label() -> None:
    assert cell_label('{"model":"m1","seed":2}') == "model=m1, seed=2"
    assert cell_label("{}") == "(no grid)"
    assert cell_label(OVERALL) == OVERALL


def test_summary_per_cell_and_overall(built: Built) -> None:
    rows = {r["cell"]: r for r in summary(built.lake, built.run_b).to_pylist()}
    assert list(rows) == [M1, M2, M3, OVERALL]
    m1 = rows[M1]
    assert (m1["samples"], m1["completed"], m1["failed"], m1["errored"], m1["passed"]) == (8, 6, 1, 1, 5)
    assert m1["pass_rate"] == 0.625
    assert (m1["pass_lo"], m1["pass_hi"]) == pytest.approx(wilson_interval(5, 8))
    scores = [1.0] * 5 + [0.0] * 3
    half = Z95 * statistics.stdev(scores) / math.sqrt(8)
    assert m1["mean_score"] == pytest.approx(0.625)
    assert (m1["score_lo"], m1["score_hi"]) == pytest.approx((0.625 - half, 0.625 + half))
    # latencies 1,2,2,3,3,4,4,5 (case index + sample + 1): p50 3, p95 4.65 (linear interpolation)
    assert (m1["latency_p50"], m1["latency_p95"]) == pytest.approx((3.0, 4.65))
    assert m1["mean_tokens"] == 150.0
    assert m1["cost_usd"] == pytest.approx(0.008)
    assert rows[M2]["mean_score"] == pytest.approx((6 + 0.5) / 8)
    m3 = rows[M3]
    assert (m3["pass_rate"], m3["pass_hi"], m3["score_lo"], m3["score_hi"]) == (1.0, 1.0, 1.0, 1.0)
    overall = rows[OVERALL]
    assert (overall["samples"], overall["passed"]) == (24, 19)
    assert (overall["pass_lo"], overall["pass_hi"]) == pytest.approx(wilson_interval(19, 24))
    assert overall["cost_usd"] == pytest.approx(0.024)


def test_summary_of_a_run_without_rows(lake: Path) -> None:
    from troupe.evals.results import RunManifest, write_manifest

    write_manifest(lake, RunManifest(run_id="empty", suite="demo"))
    assert summary(lake, "empty").num_rows == 0
    with pytest.raises(UnknownRunError, match="known eval runs: 'empty'"):
        summary(lake, "nope")


def test_per_case(built: Built) -> None:
    rows = {(r["cell"], r["case_id"]): r for r in per_case(built.lake, built.run_b).to_pylist()}
    assert len(rows) == 12
    c1 = rows[(M1, "c1")]
    assert (c1["required"], c1["samples"], c1["passed"], c1["pass_rate"], c1["mean_score"]) == (True, 2, 1, 0.5, 0.5)
    assert rows[(M1, "c4")]["errored"] == 1
    assert rows[(M2, "c3")]["mean_score"] == 0.25
    assert not rows[(M2, "c3")]["required"]


def test_compare_deltas(built: Built) -> None:
    res = compare(built.lake, built.run_a, built.run_b, Gates())
    assert [c.cell for c in res.cells] == [M1, M2]
    assert res.only_in_a == [M0] and res.only_in_b == [M3]
    m1, m2 = res.cells
    assert (m1.pass_rate_a, m1.pass_rate_b, m1.delta_pass_rate) == (1.0, 0.625, -0.375)
    assert m1.delta_score == pytest.approx(-0.375)
    assert m2.delta_pass_rate == 0.0
    assert res.overall.cell == OVERALL and res.overall.delta_pass_rate == pytest.approx(19 / 24 - 18 / 24)
    cases = {(c.cell, c.case_id): c for c in res.cases}
    assert len(cases) == 8  # the shared cells only
    assert cases[(M1, "c1")].delta_pass_rate == -0.5 and cases[(M1, "c1")].required
    assert cases[(M2, "c3")].delta_score == 0.0
    assert any("missing from 'run-b': model=m0" in w for w in res.warnings)
    data = json.loads(res.model_dump_json())  # what `troupe eval compare --json` prints
    assert data["ok"] is False and data["cells"][0]["delta_pass_rate"] == -0.375
    assert data["overall"]["cell"] == OVERALL and data["only_in_b"] == [M3]


def test_no_gates_but_a_required_row_still_fails(built: Built) -> None:
    res = compare(built.lake, built.run_a, built.run_b, Gates())
    assert res.failures == ["required case 'c1' failed in cell model=m1: 1 of 2 samples did not pass."]
    assert not res.ok


def test_each_gate_failure_sentence(built: Built) -> None:
    min_rate = compare(built.lake, built.run_a, built.run_b, Gates(min_pass_rate=0.7))
    assert "cell model=m1: pass rate 62.5% (5/8) is below the minimum 70.0%." in min_rate.failures
    assert len(min_rate.failures) == 2  # m2 (75%) and m3 (100%) reach it; plus the required case

    drop = compare(built.lake, built.run_a, built.run_b, Gates(max_drop=0.1))
    assert ("cell model=m1: pass rate fell 37.5 points (100.0% → 62.5%), more than the allowed 10.0."
            in drop.failures)
    assert len(compare(built.lake, built.run_a, built.run_b, Gates(max_drop=0.4)).failures) == 1

    absent = compare(built.lake, built.run_a, built.run_b, Gates(required_cases=["c5"]))
    assert "required case 'c5' has no results in run 'run-b'." in absent.failures


def test_gates_default_to_run_bs_manifest(built: Built) -> None:
    res = compare(built.lake, built.run_a, built.run_b)
    assert res.gates.min_pass_rate == 0.7 and res.gates.max_drop == 0.1
    assert len(res.failures) == 3 and not res.ok


def test_an_improvement_passes(built: Built) -> None:
    res = compare(built.lake, built.run_b, built.run_a, Gates(max_drop=0.0))
    assert res.ok and res.failures == []
    assert res.cells[0].delta_pass_rate == 0.375


def test_check_gates_on_one_run(built: Built) -> None:
    passing = check_gates(built.lake, built.run_a, Gates())
    assert passing.ok and passing.failures == [] and passing.required_cases == ["c1"]
    result = check_gates(built.lake, built.run_a)  # the manifest's: min 70%
    assert not result.ok and result.gates.min_pass_rate == 0.7
    assert result.failures == ["cell model=m0: pass rate 50.0% (4/8) is below the minimum 70.0%."]


def test_compare_unknown_run(built: Built) -> None:
    with pytest.raises(UnknownRunError, match="'ghost'"):
        compare(built.lake, built.run_a, "ghost")
