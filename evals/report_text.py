"""Compact text for the terminal: a run's summary per cell, and a comparison of two runs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from troupe.evals.analysis import OVERALL, CaseDelta, CompareResult, cell_label, check_gates, summary
from troupe.evals.report_format import when
from troupe.evals.results import find_manifest, require_run
from troupe.runtime.eventlog.lake import format_table


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def terminal_summary(lake: str | Path, run_id: str, *, gates: bool = True) -> str:
    """A compact text summary of a run: a header line, one row per cell and (unless ``gates=False``)
    the verdict of the run's own gates (:func:`~troupe.evals.analysis.check_gates`)."""
    require_run(lake, run_id)
    manifest = find_manifest(lake, run_id)
    cells = summary(lake, run_id).to_pylist()
    head = [f"run {run_id}"]
    if manifest is not None:
        head += [f"suite {manifest.suite}", manifest.status, when(manifest.created_at)]
    if not cells:
        return "  ".join(head) + "\n(no results yet)"
    table = pa.table({
        "cell": [("all" if c["cell"] == OVERALL else cell_label(c["cell"])) for c in cells],
        "n": pa.array([c["samples"] for c in cells], pa.int64()),
        "pass": pa.array([c["passed"] for c in cells], pa.int64()),
        "err": pa.array([c["errored"] for c in cells], pa.int64()),
        "pass%": pa.array([_r(100 * c["pass_rate"], 1) for c in cells], pa.float64()),
        "95% CI": [f"{100 * c['pass_lo']:.1f}-{100 * c['pass_hi']:.1f}" for c in cells],
        "score": pa.array([_r(c["mean_score"], 3) for c in cells], pa.float64()),
        "p50 s": pa.array([_r(c["latency_p50"], 2) for c in cells], pa.float64()),
        "p95 s": pa.array([_r(c["latency_p95"], 2) for c in cells], pa.float64()),
        "tokens": pa.array([None if c["mean_tokens"] is None else round(c["mean_tokens"]) for c in cells], pa.int64()),
        "cost $": pa.array([_r(c["cost_usd"], 4) for c in cells], pa.float64()),
    })
    if all(c["cost_usd"] is None for c in cells):
        table = table.drop_columns(["cost $"])
    text = "  ".join(head) + "\n" + format_table(table, max_width=48).rsplit("\n", 1)[0]
    if not gates:
        return text
    failures = check_gates(lake, run_id).failures
    if failures:
        text += "\ngates: FAILED\n" + "\n".join(f"  - {f}" for f in failures)
    else:
        text += "\ngates: ok"
    return text


def _signed(x: float | None, scale: float = 100.0, digits: int = 1) -> float | None:
    return None if x is None else round(scale * x, digits)


def compare_text(result: CompareResult, *, max_cases: int = 20) -> str:
    """``result`` as text: per-cell deltas, cells in one run only, the cases that moved most, the gates."""
    lines = [f"compare {result.run_a} (a) -> {result.run_b} (b)"]
    rows = [*result.cells, result.overall]
    table = pa.table({
        "cell": [("all" if c.cell == OVERALL else cell_label(c.cell)) for c in rows],
        "n a": pa.array([c.samples_a for c in rows], pa.int64()),
        "n b": pa.array([c.samples_b for c in rows], pa.int64()),
        "pass% a": pa.array([_signed(c.pass_rate_a) for c in rows], pa.float64()),
        "pass% b": pa.array([_signed(c.pass_rate_b) for c in rows], pa.float64()),
        "delta": pa.array([_signed(c.delta_pass_rate) for c in rows], pa.float64()),
        "score a": pa.array([_r(c.mean_score_a, 3) for c in rows], pa.float64()),
        "score b": pa.array([_r(c.mean_score_b, 3) for c in rows], pa.float64()),
        "d score": pa.array([_r(c.delta_score, 3) for c in rows], pa.float64()),
    })
    lines.append(format_table(table, max_width=48).rsplit("\n", 1)[0])
    if result.only_in_a:
        lines.append("cells only in a: " + "; ".join(cell_label(c) for c in result.only_in_a))
    if result.only_in_b:
        lines.append("cells only in b: " + "; ".join(cell_label(c) for c in result.only_in_b))
    moved = [c for c in result.cases if c.delta_pass_rate is None or abs(c.delta_pass_rate) > 1e-9]
    moved.sort(key=lambda c: (c.delta_pass_rate is None, c.delta_pass_rate or 0.0, c.cell, c.case_id))
    if moved:
        lines.append(f"cases that changed ({len(moved)}, regressions first):")
        lines.append(_case_table(moved[:max_cases]))
        if len(moved) > max_cases:
            lines.append(f"... and {len(moved) - max_cases} more")
    else:
        lines.append("no case's pass rate changed")
    lines += [f"warning: {w}" for w in result.warnings]
    if result.ok:
        lines.append("gates: ok")
    else:
        lines.append("gates: FAILED")
        lines += [f"  - {f}" for f in result.failures]
    return "\n".join(lines)


def _case_table(cases: list[CaseDelta]) -> str:
    table = pa.table({
        "cell": [cell_label(c.cell) for c in cases],
        "case": [c.case_id + (" *" if c.required else "") for c in cases],
        "pass% a": pa.array([_signed(c.pass_rate_a) for c in cases], pa.float64()),
        "pass% b": pa.array([_signed(c.pass_rate_b) for c in cases], pa.float64()),
        "delta": pa.array([_signed(c.delta_pass_rate) for c in cases], pa.float64()),
    })
    return format_table(table, max_width=48).rsplit("\n", 1)[0]


__all__ = ["compare_text", "terminal_summary"]
