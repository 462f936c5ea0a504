"""Reports over a sweep: one self-contained HTML file, and compact text for the terminal.

The HTML needs nothing else: inline CSS, charts as inline SVG drawn here, no script, no network.
Every value from the results or the lake is HTML-escaped. Failing samples link to their session's
event timeline, embedded in the same page as a collapsible ``<details>``.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import yaml

from troupe.evals.analysis import (
    OVERALL,
    CaseDelta,
    CompareResult,
    cell_label,
    check_gates,
    per_case,
    summary,
)
from troupe.evals.models import Suite
from troupe.evals.results import RunManifest, connect, find_manifest, require_run, results_table
from troupe.runtime.eventlog.lake import format_table

MAX_FAILURES: Final = 200
"""Failing samples listed in the HTML report (the count of all is shown)."""
MAX_TRACE_EVENTS: Final = 400
"""Events shown per session timeline."""
REPLY_EXCERPT: Final = 300


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _cut(text: str | None, n: int) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(value: datetime | None) -> str:
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- SVG ----------------------------------------------------------------------------------------
_LABEL_W: Final = 230
_PLOT_W: Final = 440
_ROW_H: Final = 28
_TOP: Final = 26
_BOTTOM: Final = 10


def _nice_ticks(hi: float, count: int = 5) -> list[float]:
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _svg_open(rows: int, title: str) -> tuple[list[str], int]:
    height = _TOP + rows * _ROW_H + _BOTTOM
    width = _LABEL_W + _PLOT_W + 130
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ], height


def _svg_axis(parts: list[str], ticks: list[float], height: int, fmt: Any) -> None:
    top = ticks[-1] or 1.0
    for t in ticks:
        x = _LABEL_W + _PLOT_W * t / top
        parts.append(f'<line x1="{x:.1f}" y1="{_TOP - 4}" x2="{x:.1f}" y2="{height - _BOTTOM}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{_TOP - 8}" class="tick">{_e(fmt(t))}</text>')


def _svg_label(parts: list[str], y: float, label: str) -> None:
    parts.append(
        f'<text x="{_LABEL_W - 8}" y="{y + 4:.1f}" class="lbl"><title>{_e(label)}</title>{_e(_cut(label, 34))}</text>'
    )


def svg_pass_rates(rows: Sequence[tuple[str, float | None, float | None, float | None]]) -> str:
    """Horizontal bars of pass rate (label, rate, ci_lo, ci_hi), with 95% CI whiskers."""
    parts, height = _svg_open(len(rows), "Pass rate per cell with 95% Wilson intervals")
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    _svg_axis(parts, ticks, height, lambda t: f"{100 * t:.0f}%")
    for i, (label, rate, lo, hi) in enumerate(rows):
        y = _TOP + i * _ROW_H + _ROW_H / 2
        _svg_label(parts, y, label)
        if rate is None:
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 4:.1f}" class="val">no samples</text>')
            continue
        w = _PLOT_W * rate
        parts.append(
            f'<rect x="{_LABEL_W}" y="{y - 8:.1f}" width="{w:.1f}" height="16" class="bar">'
            f"<title>{_e(label)}: {_pct(rate)} (95% CI {_pct(lo)}–{_pct(hi)})</title></rect>"
        )
        end = w
        if lo is not None and hi is not None:
            x1, x2 = _LABEL_W + _PLOT_W * lo, _LABEL_W + _PLOT_W * hi
            parts.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" class="whisk"/>')
            for x in (x1, x2):
                parts.append(f'<line x1="{x:.1f}" y1="{y - 5:.1f}" x2="{x:.1f}" y2="{y + 5:.1f}" class="whisk"/>')
            end = max(end, _PLOT_W * hi)
        parts.append(f'<text x="{_LABEL_W + end + 6:.1f}" y="{y + 4:.1f}" class="val">{_pct(rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def svg_box_plots(rows: Sequence[tuple[str, Sequence[float]]], title: str, unit: str = "") -> str:
    """Horizontal box plots (label, values): box = quartiles, line = median, whiskers = Tukey's
    1.5 IQR, dots = outliers."""
    parts, height = _svg_open(len(rows), title)
    hi = max((max(v) for _, v in rows if v), default=0.0)
    ticks = _nice_ticks(hi)
    top = ticks[-1] or 1.0
    digits = 0 if top >= 10 else 1 if top >= 1 else 2
    _svg_axis(parts, ticks, height, lambda t: f"{t:,.{digits}f}{unit}")

    def x(v: float) -> float:
        return _LABEL_W + _PLOT_W * v / top

    for i, (label, values) in enumerate(rows):
        y = _TOP + i * _ROW_H + _ROW_H / 2
        _svg_label(parts, y, label)
        vals = sorted(float(v) for v in values if v is not None)
        if not vals:
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 4:.1f}" class="val">no data</text>')
            continue
        q1, med, q3 = (_quantile(vals, q) for q in (0.25, 0.5, 0.75))
        iqr = q3 - q1
        low = min(v for v in vals if v >= q1 - 1.5 * iqr)
        high = max(v for v in vals if v <= q3 + 1.5 * iqr)
        tip = (f"{label}: n={len(vals)}, min {vals[0]:g}, q1 {q1:g}, median {med:g}, q3 {q3:g}, "
               f"max {vals[-1]:g}{unit}")
        parts.append(f"<g><title>{_e(tip)}</title>")
        parts.append(f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" class="whisk"/>')
        for v in (low, high):
            parts.append(f'<line x1="{x(v):.1f}" y1="{y - 5:.1f}" x2="{x(v):.1f}" y2="{y + 5:.1f}" class="whisk"/>')
        parts.append(
            f'<rect x="{x(q1):.1f}" y="{y - 8:.1f}" width="{max(x(q3) - x(q1), 1.0):.1f}" height="16" class="box"/>'
        )
        parts.append(f'<line x1="{x(med):.1f}" y1="{y - 8:.1f}" x2="{x(med):.1f}" y2="{y + 8:.1f}" class="med"/>')
        for v in [v for v in vals if v < low or v > high][:50]:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="2.5" class="out"/>')
        parts.append("</g>")
        parts.append(
            f'<text x="{x(high) + 8:.1f}" y="{y + 4:.1f}" class="val">median {med:,.{digits}f}{_e(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- HTML pieces --------------------------------------------------------------------------------
_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1d1d1f;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-bottom:12px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.meta dt{color:#666}dl.meta dd{margin:0}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f6}tr:nth-child(even) td{background:#fafafa}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#c0262d;font-weight:600}
.gates li{color:#c0262d}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;background:#f6f6f8;padding:8px;border-radius:4px}
td.reply{max-width:380px;white-space:pre-wrap;word-break:break-word}
td.why{max-width:340px;white-space:pre-wrap;word-break:break-word}
details{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 8px}
details:target{border-color:#c0262d;box-shadow:0 0 0 2px #f3c5c7}
summary{cursor:pointer}
svg .grid{stroke:#e3e3e3}svg .tick{font-size:11px;fill:#777;text-anchor:middle}
svg .lbl{font-size:12px;fill:#333;text-anchor:end}svg .val{font-size:11px;fill:#333}
svg .bar{fill:#6c9bd2}svg .box{fill:#cfe0f3;stroke:#4a78ad}svg .med{stroke:#1d3f66;stroke-width:2}
svg .whisk{stroke:#333;stroke-width:1.2}svg .out{fill:#999}
.heat{text-align:center;white-space:nowrap}
"""


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int] = (),
    classes: Mapping[int, str] | None = None,
) -> str:
    """A table from pre-escaped cell HTML; ``numeric`` columns are right-aligned, ``classes`` name a
    column's CSS class."""
    cls = {i: "n" for i in numeric} | dict(classes or {})

    def td(i: int, c: str) -> str:
        return f'<td class="{cls[i]}">{c}</td>' if i in cls else f"<td>{c}</td>"

    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(td(i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _meta(manifest: RunManifest | None, run_id: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = [("Run id", f"<code>{_e(run_id)}</code>")]
    if manifest is None:
        items.append(("Manifest", "none (results only)"))
        return items
    items += [
        ("Status", _e(manifest.status)),
        ("Created", _e(_when(manifest.created_at))),
        ("Updated", _e(_when(manifest.updated_at))),
    ]
    if manifest.suite_path:
        items.append(("Suite file", f"<code>{_e(manifest.suite_path)}</code>"))
    grid = "; ".join(f"{k} = {', '.join(json.dumps(v) if not isinstance(v, str) else v for v in vs)}"
                     for k, vs in manifest.grid.items())
    items.append(("Grid", _e(grid or "(none)")))
    if manifest.models:
        items.append(("Models", _e(", ".join(manifest.models))))
    items.append(("Samples per case", _e(manifest.samples)))
    items.append(("Concurrency", _e(manifest.concurrency)))
    if manifest.totals:
        items.append(("Totals", _e(", ".join(f"{k} {v}" for k, v in manifest.totals.items()))))
    gates = manifest.gates
    g = []
    if gates.min_pass_rate is not None:
        g.append(f"min pass rate {_pct(gates.min_pass_rate)}")
    if gates.max_drop is not None:
        g.append(f"max drop {_pct(gates.max_drop)}")
    if manifest.required_cases:
        g.append("required cases " + ", ".join(manifest.required_cases))
    items.append(("Gates", _e("; ".join(g) or "(none)")))
    return items


def _license(manifest: RunManifest | None) -> str | None:
    if manifest is None:
        return None
    if manifest.license:
        return manifest.license
    if manifest.suite_path:
        try:
            data = yaml.safe_load(Path(manifest.suite_path).read_text())
            return Suite.model_validate(data).license
        except Exception:  # noqa: BLE001 - the suite file may have moved or changed; the report goes on
            return None
    return None


def _failing_grades(grades: str | None) -> str:
    try:
        items = json.loads(grades or "[]")
    except ValueError:
        return ""
    lines = []
    for g in items if isinstance(items, list) else []:
        if isinstance(g, dict) and not g.get("passed", True):
            score = g.get("score")
            score_text = f" ({score:.2f})" if isinstance(score, int | float) else ""
            lines.append(f"{g.get('grader', '?')}{score_text}: {g.get('explanation', '')}".rstrip(": "))
    return "\n".join(lines)


def _anchor(session_id: str, used: set[str]) -> str:
    base = "trace-" + re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)
    anchor, n = base, 1
    while anchor in used:
        n += 1
        anchor = f"{base}-{n}"
    used.add(anchor)
    return anchor


def _traces(lake: str | Path, session_ids: list[str], limit: int) -> dict[str, tuple[list[dict[str, Any]], int]]:
    """Each session's first ``limit`` events (ts, type, agent, tool, status, duration, payload) and its total."""
    if not session_ids:
        return {}
    con = connect(lake)
    try:
        rows = con.sql(
            """
            SELECT session_id, ts, type, agent, tool, status, duration_ms, tokens_in, tokens_out, payload,
                   count(*) OVER (PARTITION BY session_id) AS total,
                   min(ts) OVER (PARTITION BY session_id) AS t0
            FROM events WHERE session_id IN (SELECT unnest($1::VARCHAR[]))
            QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY ts, seq) <= $2
            ORDER BY session_id, ts, seq
            """,
            params=[session_ids, limit],
        ).to_arrow_table().to_pylist()
    finally:
        con.close()
    out: dict[str, tuple[list[dict[str, Any]], int]] = {}
    for r in rows:
        events, _ = out.get(r["session_id"], ([], 0))
        events.append(r)
        out[r["session_id"]] = (events, r["total"])
    return out


def _trace_html(anchor: str, title: str, events: list[dict[str, Any]], total: int) -> str:
    if not events:
        body = "<p>No events for this session in the lake.</p>"
    else:
        rows = []
        for ev in events:
            offset = (ev["ts"] - ev["t0"]).total_seconds() if ev["ts"] and ev["t0"] else None
            tokens = ""
            if ev["tokens_in"] is not None or ev["tokens_out"] is not None:
                tokens = f"{ev['tokens_in'] or 0}→{ev['tokens_out'] or 0}"
            payload = "" if ev["payload"] in (None, "{}") else _cut(ev["payload"], 200)
            status = ev["status"] or ""
            cls = ' class="bad"' if status in ("error", "failed") or ev["type"].endswith(".error") else ""
            rows.append([
                _num(offset, 3), f"<span{cls}>{_e(ev['type'])}</span>", _e(ev["agent"]), _e(ev["tool"]),
                _e(status), _num(ev["duration_ms"], 1), _e(tokens), f'<span class="mono">{_e(payload)}</span>',
            ])
        body = _table(["+s", "type", "agent", "tool", "status", "ms", "tokens", "payload"], rows, {0, 5})
        if total > len(events):
            body += f"<p>First {len(events)} of {total} events.</p>"
    return f'<details id="{anchor}"><summary>{title}</summary>{body}</details>'


def render_html(
    lake: str | Path, run_id: str, *, max_failures: int = MAX_FAILURES, max_trace_events: int = MAX_TRACE_EVENTS
) -> str:
    """The report of :func:`write_html`, as a string."""
    require_run(lake, run_id)
    manifest = find_manifest(lake, run_id)
    results = results_table(lake, run_id)
    cells = summary(lake, run_id).to_pylist()
    cases = per_case(lake, run_id).to_pylist()
    gate_failures = check_gates(lake, run_id).failures
    suite = manifest.suite if manifest else (results["suite"][0].as_py() if results.num_rows else "?")

    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Eval {_e(suite)} · {_e(run_id)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Eval report: {_e(suite)}</h1>",
    ]
    if manifest is not None and manifest.description:
        out.append(f'<div class="sub">{_e(manifest.description)}</div>')
    out.append('<dl class="meta">')
    for k, v in _meta(manifest, run_id):
        out.append(f"<dt>{_e(k)}</dt><dd>{v}</dd>")
    overall = next((c for c in cells if c["cell"] == OVERALL), None)
    if overall is not None:
        out.append(
            f"<dt>Result</dt><dd>{overall['passed']}/{overall['samples']} samples passed "
            f"({_pct(overall['pass_rate'])}), {overall['errored']} errored (never ran), "
            f"{overall['failed']} session(s) failed"
            + (f", cost ${overall['cost_usd']:.4f}" if overall["cost_usd"] is not None else "") + "</dd>"
        )
    out.append("</dl>")
    if gate_failures:
        out.append('<p class="bad">Gates failed:</p><ul class="gates">')
        out.extend(f"<li>{_e(f)}</li>" for f in gate_failures)
        out.append("</ul>")
    else:
        out.append('<p class="ok">Gates passed.</p>')
    out.append("</header>")

    # summary table
    out.append("<section><h2>Summary per cell</h2>")
    rows = []
    for c in cells:
        label = "all cells" if c["cell"] == OVERALL else cell_label(c["cell"])
        name = f"<b>{_e(label)}</b>" if c["cell"] == OVERALL else f'<span title="{_e(c["cell"])}">{_e(label)}</span>'
        rows.append([
            name, _e(c["samples"]), _e(c["completed"]), _e(c["failed"]), _e(c["errored"]), _e(c["passed"]),
            f"{_pct(c['pass_rate'])} <small>[{_pct(c['pass_lo'])}, {_pct(c['pass_hi'])}]</small>",
            f"{_num(c['mean_score'], 3)} <small>[{_num(c['score_lo'], 3)}, {_num(c['score_hi'], 3)}]</small>",
            f"{_num(c['latency_p50'])} / {_num(c['latency_p95'])}",
            _num(c["mean_tokens"], 0),
            "–" if c["cost_usd"] is None else f"${c['cost_usd']:.4f}",
        ])
    out.append(_table(
        ["Cell", "Samples", "Completed", "Failed", "Errored", "Passed", "Pass rate [95% CI]",
         "Mean score [95% CI]", "Latency p50 / p95 (s)", "Mean tokens", "Cost"],
        rows, set(range(1, 11)),
    ))
    out.append("<p><small>Pass rate interval: Wilson score, 95%. Score interval: normal approximation, 95% "
               "(mean ± 1.96·sd/√n). Errored samples (never ran) count as not passed.</small></p></section>")

    per_cell = [c for c in cells if c["cell"] != OVERALL]
    if per_cell:
        out.append("<section><h2>Pass rate per cell</h2>")
        out.append(svg_pass_rates([(cell_label(c["cell"]), c["pass_rate"], c["pass_lo"], c["pass_hi"])
                                   for c in per_cell]))
        out.append("</section>")
        by_cell: dict[str, list[dict[str, Any]]] = {}
        for r in results.select(["cell", "latency_s", "tokens"]).to_pylist():
            by_cell.setdefault(r["cell"], []).append(r)
        out.append("<section><h2>Latency per cell</h2>")
        out.append(svg_box_plots([(cell_label(c["cell"]), [r["latency_s"] for r in by_cell.get(c["cell"], [])
                                                           if r["latency_s"] is not None]) for c in per_cell],
                                 "Session latency per cell (seconds)", " s"))
        out.append("</section><section><h2>Tokens per cell</h2>")
        out.append(svg_box_plots([(cell_label(c["cell"]), [r["tokens"] for r in by_cell.get(c["cell"], [])])
                                  for c in per_cell], "Tokens per sample per cell"))
        out.append("</section>")

    if cases:
        out.append(_case_matrix(cases, [c["cell"] for c in per_cell]))

    out.append(_failures_section(lake, results, max_failures, max_trace_events))

    license_text = _license(manifest)
    if license_text:
        out.append(f"<section><h2>License of the cases</h2><pre>{_e(license_text)}</pre></section>")
    out.append(f"<footer><p><small>Generated {_e(_when(datetime.now(UTC)))} by troupe.</small></p></footer>")
    out.append("</body></html>")
    return "\n".join(out)


def _case_matrix(cases: list[dict[str, Any]], cell_order: list[str]) -> str:
    grid: dict[str, dict[str, dict[str, Any]]] = {}
    required: dict[str, bool] = {}
    for r in cases:
        grid.setdefault(r["case_id"], {})[r["cell"]] = r
        required[r["case_id"]] = required.get(r["case_id"], False) or bool(r["required"])
    headers = ["Case"] + [_e(cell_label(c)) for c in cell_order]
    rows = []
    for case_id in sorted(grid):
        row = [_e(case_id) + (' <small class="bad">required</small>' if required[case_id] else "")]
        for cell in cell_order:
            r = grid[case_id].get(cell)
            if r is None:
                row.append("–")
                continue
            rate = r["pass_rate"]
            hue = int(120 * rate)  # red (0) to green (120)
            row.append(f'<span class="heat" style="background:hsl({hue},70%,88%);padding:1px 6px" '
                       f'title="mean score {_num(r["mean_score"], 3)}">{r["passed"]}/{r["samples"]}</span>')
        rows.append(row)
    return "<section><h2>Cases × cells (passed / samples)</h2>" + _table(headers, rows) + "</section>"


def _failures_section(lake: str | Path, results: pa.Table, max_failures: int, max_trace_events: int) -> str:
    failing = [r for r in results.to_pylist() if not r["passed"]]
    failing.sort(key=lambda r: (not r["required"], r["cell"], r["case_id"], r["sample"]))
    shown = failing[:max_failures]
    out = [f"<section><h2>Failures ({len(failing)})</h2>"]
    if not failing:
        out.append("<p>Every sample passed.</p></section>")
        return "".join(out)
    if len(shown) < len(failing):
        out.append(f"<p>The first {len(shown)} of {len(failing)}, required cases first.</p>")
    sessions = list(dict.fromkeys(r["session_id"] for r in shown if r["session_id"]))
    traces = _traces(lake, sessions, max_trace_events)
    used: set[str] = set()
    anchors = {sid: _anchor(sid, used) for sid in sessions}
    rows = []
    for r in shown:
        why = "\n".join(x for x in (r["error"] or "", _failing_grades(r["grades"])) if x)
        if not why:
            why = f"score {r['score']:.2f} below the pass threshold"
        sid = r["session_id"]
        link = f'<a href="#{anchors[sid]}">trace</a>' if sid else "–"
        rows.append([
            _e(r["case_id"]) + (' <small class="bad">required</small>' if r["required"] else ""),
            _e(cell_label(r["cell"])), _e(r["sample"]), _e(r["status"]), _e(why),
            _e(_cut(r["reply"], REPLY_EXCERPT)), link,
        ])
    out.append(_table(["Case", "Cell", "Sample", "Status", "Why", "Reply (excerpt)", "Trace"], rows, {2},
                      {4: "why", 5: "reply"}))
    out.append("<h3>Traces</h3><p><small>Each failing sample's session, from the event lake.</small></p>")
    by_session = {r["session_id"]: r for r in shown if r["session_id"]}
    for sid in sessions:
        r = by_session[sid]
        events, total = traces.get(sid, ([], 0))
        title = (f"<code>{_e(r['case_id'])}</code> · {_e(cell_label(r['cell']))} · sample {_e(r['sample'])} · "
                 f"session <code>{_e(sid)}</code> · {total} events")
        out.append(_trace_html(anchors[sid], title, events, total))
    out.append("</section>")
    return "".join(out)


def write_html(lake: str | Path, run_id: str, out: str | Path, **options: int) -> Path:
    """Write the run's report as one self-contained HTML file; returns its path.

    ``out`` is the file to write, or an existing directory (the file is ``<run_id>.html`` there).
    Options: ``max_failures``, ``max_trace_events``.
    """
    path = Path(out)
    if path.is_dir():
        path = path / (re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) + ".html")
    text = render_html(lake, run_id, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- text -------------------------------------------------------------------------------------
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
        head += [f"suite {manifest.suite}", manifest.status, _when(manifest.created_at)]
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


__all__ = [
    "compare_text",
    "render_html",
    "svg_box_plots",
    "svg_pass_rates",
    "terminal_summary",
    "write_html",
]
