"""Numbers over a sweep's results: per-cell summaries with confidence intervals, per-case rates,
run-to-run comparison and gates.

Definitions (every function uses them):

* a *cell* is one combination of grid values (the ``cell`` JSON column); :data:`OVERALL` names the
  row that pools every cell;
* ``samples`` counts every sample row, including ``error`` rows (the sample never ran): the pass rate
  is ``passed / samples``, so an error counts as a failure to pass;
* ``completed`` is session status ``completed``; ``failed`` any other session status (``failed``,
  ``budget_exceeded``, ``cancelled``, ...); ``errored`` status ``error``;
* the pass rate's 95% interval is Wilson's score interval; the mean score's 95% interval is the normal
  approximation ``mean ± 1.96·sd/√n`` (sample standard deviation), clipped to [0, 1] and absent for
  fewer than two samples. With few samples the normal interval is too narrow; read it as a guide.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, computed_field

from troupe.evals.models import Gates
from troupe.evals.results import connect, find_manifest, require_run

Z95: Final = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""
OVERALL: Final = "(all)"
"""The ``cell`` value of the row pooling every cell (no cell is ever this: cells are JSON objects)."""
_EPS: Final = 1e-9


def wilson_interval(passed: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for ``passed`` successes out of ``n`` (``None`` for ``n == 0``)."""
    if n <= 0:
        return None
    p = passed / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if passed <= 0 else max(0.0, center - half)
    hi = 1.0 if passed >= n else min(1.0, center + half)
    return lo, hi


def cell_label(cell: str) -> str:
    """A cell for people: ``model=gpt-x, seed=1``; ``(no grid)`` for ``{}``; :data:`OVERALL` as is."""
    try:
        values = json.loads(cell)
    except (TypeError, ValueError):
        return str(cell)
    if not isinstance(values, dict):
        return str(cell)
    if not values:
        return "(no grid)"
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items())


def _run_literal(run_id: str) -> str:
    return "'" + run_id.replace("'", "''") + "'"


def _wilson_sql(k: str, n: str) -> tuple[str, str]:
    z2 = Z95 * Z95
    p = f"({k})::DOUBLE / nullif({n}, 0)"
    center = f"(({p}) + {z2} / (2.0 * {n})) / (1 + {z2} / {n})"
    half = f"({Z95} * sqrt(({p}) * (1 - ({p})) / {n} + {z2} / (4.0 * {n} * {n})) / (1 + {z2} / {n}))"
    lo = f"CASE WHEN {k} <= 0 THEN 0.0 ELSE greatest(0.0, {center} - {half}) END"
    hi = f"CASE WHEN {k} >= {n} THEN 1.0 ELSE least(1.0, {center} + {half}) END"
    return lo, hi


def _summary_sql(run_id: str) -> str:
    lo, hi = _wilson_sql("passed", "samples")
    return f"""
    WITH g AS (
        SELECT
            grouping(cell) AS is_overall,
            cell,
            count(*) AS samples,
            count(*) FILTER (WHERE status = 'completed') AS completed,
            count(*) FILTER (WHERE status NOT IN ('completed', 'error')) AS failed,
            count(*) FILTER (WHERE status = 'error') AS errored,
            count(*) FILTER (WHERE passed) AS passed,
            avg(score) AS mean_score,
            stddev_samp(score) AS sd_score,
            count(score) AS n_score,
            sum(score * weight) / nullif(sum(weight), 0) AS weighted_score,
            quantile_cont(latency_s, 0.5) AS latency_p50,
            quantile_cont(latency_s, 0.95) AS latency_p95,
            avg(tokens) AS mean_tokens,
            sum(cost_usd) AS cost_usd
        FROM results WHERE run_id = {_run_literal(run_id)}
        GROUP BY ROLLUP (cell)
    )
    SELECT
        CASE WHEN is_overall = 1 THEN '{OVERALL}' ELSE cell END AS cell,
        samples, completed, failed, errored, passed,
        passed::DOUBLE / nullif(samples, 0) AS pass_rate,
        CASE WHEN samples > 0 THEN {lo} END AS pass_lo,
        CASE WHEN samples > 0 THEN {hi} END AS pass_hi,
        mean_score,
        CASE WHEN n_score > 1 THEN greatest(0.0, mean_score - {Z95} * sd_score / sqrt(n_score)) END AS score_lo,
        CASE WHEN n_score > 1 THEN least(1.0, mean_score + {Z95} * sd_score / sqrt(n_score)) END AS score_hi,
        weighted_score, latency_p50, latency_p95, mean_tokens, cost_usd
    FROM g
    WHERE NOT (is_overall = 1 AND samples = 0)
    ORDER BY is_overall, cell
    """


def summary(lake: str | Path, run_id: str) -> pa.Table:
    """One row per cell, then the :data:`OVERALL` row (absent when the run has no rows yet).

    Columns: ``cell, samples, completed, failed, errored, passed, pass_rate, pass_lo, pass_hi,
    mean_score, score_lo, score_hi, weighted_score, latency_p50, latency_p95, mean_tokens, cost_usd``
    (latency in seconds; ``weighted_score`` weighs samples by their case's ``weight``; ``cost_usd``
    is null when no sample's cost is known).
    """
    require_run(lake, run_id)
    con = connect(lake)
    try:
        return con.sql(_summary_sql(run_id)).to_arrow_table()
    finally:
        con.close()


def per_case(lake: str | Path, run_id: str) -> pa.Table:
    """One row per cell × case: ``cell, case_id, required, samples, passed, errored, pass_rate, mean_score``."""
    require_run(lake, run_id)
    con = connect(lake)
    try:
        return con.sql(f"""
            SELECT cell, case_id, bool_or(required) AS required, count(*) AS samples,
                   count(*) FILTER (WHERE passed) AS passed,
                   count(*) FILTER (WHERE status = 'error') AS errored,
                   count(*) FILTER (WHERE passed)::DOUBLE / count(*) AS pass_rate,
                   avg(score) AS mean_score
            FROM results WHERE run_id = {_run_literal(run_id)}
            GROUP BY cell, case_id ORDER BY cell, case_id
        """).to_arrow_table()
    finally:
        con.close()


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _gates_and_required(lake: str | Path, run_id: str, gates: Gates | None) -> tuple[Gates, list[str]]:
    manifest = find_manifest(lake, run_id)
    if gates is None:
        gates = manifest.gates if manifest is not None else Gates()
    required = list(gates.required_cases)
    if manifest is not None:
        required += [c for c in manifest.required_cases if c not in required]
    return gates, required


def check_gates(lake: str | Path, run_id: str, gates: Gates | None = None) -> GateResult:
    """Check one run against gates: ``.ok``, and ``.failures`` as sentences.

    ``gates`` default to the run manifest's (the suite's). Checked: every cell's pass rate reaches
    ``min_pass_rate``; every required case (rows marked ``required``, ``gates.required_cases`` and the
    manifest's ``required_cases``) has rows and passes every sample in every cell.
    """
    gates, required = _gates_and_required(lake, run_id, gates)
    cases = per_case(lake, run_id)
    failures = _single_run_failures(summary(lake, run_id), cases, gates, required, run_id)
    every = required + sorted({r["case_id"] for r in cases.to_pylist() if r["required"]} - set(required))
    return GateResult(run_id=run_id, gates=gates, required_cases=every, failures=failures)


def _single_run_failures(
    cells: pa.Table, cases: pa.Table, gates: Gates, required: list[str], run_id: str
) -> list[str]:
    failures: list[str] = []
    if gates.min_pass_rate is not None:
        for row in cells.to_pylist():
            if row["cell"] == OVERALL or row["pass_rate"] is None:
                continue
            if row["pass_rate"] < gates.min_pass_rate - _EPS:
                failures.append(
                    f"cell {cell_label(row['cell'])}: pass rate {_pct(row['pass_rate'])} "
                    f"({row['passed']}/{row['samples']}) is below the minimum {_pct(gates.min_pass_rate)}."
                )
    case_rows = cases.to_pylist()
    required_set = set(required) | {r["case_id"] for r in case_rows if r["required"]}
    for row in case_rows:
        if row["case_id"] in required_set and row["passed"] < row["samples"]:
            failed = row["samples"] - row["passed"]
            failures.append(
                f"required case {row['case_id']!r} failed in cell {cell_label(row['cell'])}: "
                f"{failed} of {row['samples']} sample{'s' if row['samples'] != 1 else ''} did not pass."
            )
    present = {r["case_id"] for r in case_rows}
    for case_id in required:
        if case_id not in present:
            failures.append(f"required case {case_id!r} has no results in run {run_id!r}.")
    return failures


class GateResult(BaseModel):
    """The gates one run was checked against, and the sentences of those it fails."""

    run_id: str
    gates: Gates
    required_cases: list[str] = Field(default_factory=list)
    """Every case that had to pass: rows marked ``required``, ``gates.required_cases``, the manifest's."""
    failures: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.failures


class _Delta(BaseModel):
    """Pass rate and mean score on both sides; deltas are ``b - a`` (``None`` where a side has none)."""

    model_config = ConfigDict(frozen=True)

    samples_a: int
    samples_b: int
    pass_rate_a: float | None
    pass_rate_b: float | None
    mean_score_a: float | None
    mean_score_b: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def delta_pass_rate(self) -> float | None:
        if self.pass_rate_a is None or self.pass_rate_b is None:
            return None
        return self.pass_rate_b - self.pass_rate_a

    @computed_field  # type: ignore[prop-decorator]
    @property
    def delta_score(self) -> float | None:
        if self.mean_score_a is None or self.mean_score_b is None:
            return None
        return self.mean_score_b - self.mean_score_a


class CellDelta(_Delta):
    """One cell in both runs (or the pooled :data:`OVERALL` row)."""

    cell: str
    pass_ci_b: tuple[float, float] | None = None
    """Run ``b``'s 95% Wilson interval of the pass rate."""


class CaseDelta(_Delta):
    """One case of a cell present in both runs; a side without the case has 0 samples and ``None`` rates."""

    cell: str
    case_id: str
    required: bool


class CompareResult(BaseModel):
    """Run ``b`` against run ``a`` (the baseline): deltas are ``b - a``. ``model_dump_json()`` for ``--json``."""

    run_a: str
    run_b: str
    gates: Gates
    overall: CellDelta
    cells: list[CellDelta] = Field(default_factory=list)
    """Cells present in both runs, sorted by cell."""
    cases: list[CaseDelta] = Field(default_factory=list)
    """Cases of the cells present in both runs, sorted by cell then case id."""
    only_in_a: list[str] = Field(default_factory=list)
    """Cells run ``a`` has and ``b`` does not."""
    only_in_b: list[str] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)
    """Gate failures of run ``b``, as sentences."""
    warnings: list[str] = Field(default_factory=list)
    """Things worth knowing that fail no gate (different suites, cells missing)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.failures


def _cell_delta(cell: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> CellDelta:
    a, b = a or {}, b or {}
    ci = (b["pass_lo"], b["pass_hi"]) if b.get("pass_lo") is not None else None
    return CellDelta(
        cell=cell, samples_a=a.get("samples", 0), samples_b=b.get("samples", 0),
        pass_rate_a=a.get("pass_rate"), pass_rate_b=b.get("pass_rate"),
        mean_score_a=a.get("mean_score"), mean_score_b=b.get("mean_score"), pass_ci_b=ci,
    )


def compare(lake: str | Path, run_a: str, run_b: str, gates: Gates | None = None) -> CompareResult:
    """Compare run ``b`` with run ``a`` (the baseline), cell by cell (by ``cell`` string) and case by case (by id).

    Gates (``gates``, else run ``b``'s manifest's, else none) are checked on ``b``: ``min_pass_rate``
    per cell, required cases (see :func:`check_gates`), and ``max_drop``: no cell present in both
    runs may lose more than that much pass rate against ``a``.
    """
    require_run(lake, run_a)
    require_run(lake, run_b)
    sum_a = {r["cell"]: r for r in summary(lake, run_a).to_pylist()}
    sum_b_table = summary(lake, run_b)
    sum_b = {r["cell"]: r for r in sum_b_table.to_pylist()}
    cases_b_table = per_case(lake, run_b)
    cases_a = {(r["cell"], r["case_id"]): r for r in per_case(lake, run_a).to_pylist()}
    cases_b = {(r["cell"], r["case_id"]): r for r in cases_b_table.to_pylist()}

    cells_a = set(sum_a) - {OVERALL}
    cells_b = set(sum_b) - {OVERALL}
    shared = sorted(cells_a & cells_b)
    gates, required = _gates_and_required(lake, run_b, gates)
    result = CompareResult(
        run_a=run_a, run_b=run_b, gates=gates,
        overall=_cell_delta(OVERALL, sum_a.get(OVERALL), sum_b.get(OVERALL)),
        cells=[_cell_delta(c, sum_a[c], sum_b[c]) for c in shared],
        only_in_a=sorted(cells_a - cells_b), only_in_b=sorted(cells_b - cells_a),
    )
    shared_set = set(shared)
    for key in sorted(k for k in set(cases_a) | set(cases_b) if k[0] in shared_set):
        a, b = cases_a.get(key, {}), cases_b.get(key, {})
        result.cases.append(CaseDelta(
            cell=key[0], case_id=key[1], required=bool(a.get("required") or b.get("required")),
            samples_a=a.get("samples", 0), samples_b=b.get("samples", 0),
            pass_rate_a=a.get("pass_rate"), pass_rate_b=b.get("pass_rate"),
            mean_score_a=a.get("mean_score"), mean_score_b=b.get("mean_score"),
        ))

    result.failures = _single_run_failures(sum_b_table, cases_b_table, gates, required, run_b)
    if gates.max_drop is not None:
        for c in result.cells:
            drop = -(c.delta_pass_rate or 0.0)
            if drop > gates.max_drop + _EPS:
                result.failures.append(
                    f"cell {cell_label(c.cell)}: pass rate fell {100 * drop:.1f} points "
                    f"({_pct(c.pass_rate_a)} → {_pct(c.pass_rate_b)}), more than the allowed "
                    f"{100 * gates.max_drop:.1f}."
                )

    suite_a, suite_b = _suite_of(lake, run_a), _suite_of(lake, run_b)
    if suite_a and suite_b and suite_a != suite_b:
        result.warnings.append(f"the runs are of different suites ({suite_a!r} and {suite_b!r}).")
    if result.only_in_a:
        result.warnings.append(
            f"{len(result.only_in_a)} cell(s) of {run_a!r} are missing from {run_b!r}: "
            + "; ".join(cell_label(c) for c in result.only_in_a) + "."
        )
    if not shared:
        result.warnings.append("the runs share no cell, so nothing is compared cell by cell.")
    return result


def _suite_of(lake: str | Path, run_id: str) -> str | None:
    manifest = find_manifest(lake, run_id)
    if manifest is not None:
        return manifest.suite
    con = connect(lake)
    try:
        rows = con.sql(f"SELECT any_value(suite) FROM results WHERE run_id = {_run_literal(run_id)}").fetchall()
    finally:
        con.close()
    return rows[0][0] if rows else None


__all__ = [
    "OVERALL",
    "Z95",
    "CaseDelta",
    "CellDelta",
    "CompareResult",
    "GateResult",
    "cell_label",
    "check_gates",
    "compare",
    "per_case",
    "summary",
    "wilson_interval",
]
