"""The HTML report of a sweep: one self-contained file.

The HTML needs nothing else: inline CSS, charts as inline SVG (:mod:`~troupe.evals.report_svg`), no
script, no network. Every value from the results or the lake is HTML-escaped. Failing samples link
to their session's event timeline, embedded in the same page as a collapsible ``<details>``
(:mod:`~troupe.evals.report_failures`). The terminal's text summaries are in
:mod:`~troupe.evals.report_text`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from troupe.evals.analysis import OVERALL, cell_label, check_gates, per_case, summary
from troupe.evals.models import Suite
from troupe.evals.report_failures import failures_section
from troupe.evals.report_format import esc, html_table, num, pct, when
from troupe.evals.report_svg import svg_box_plots, svg_pass_rates
from troupe.evals.results import RunManifest, find_manifest, require_run, results_table

MAX_FAILURES: Final = 200
"""Failing samples listed in the HTML report (the count of all is shown)."""
MAX_TRACE_EVENTS: Final = 400
"""Events shown per session timeline."""

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


def _meta(manifest: RunManifest | None, run_id: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = [("Run id", f"<code>{esc(run_id)}</code>")]
    if manifest is None:
        items.append(("Manifest", "none (results only)"))
        return items
    items += [
        ("Status", esc(manifest.status)),
        ("Created", esc(when(manifest.created_at))),
        ("Updated", esc(when(manifest.updated_at))),
    ]
    if manifest.suite_path:
        items.append(("Suite file", f"<code>{esc(manifest.suite_path)}</code>"))
    grid = "; ".join(f"{k} = {', '.join(json.dumps(v) if not isinstance(v, str) else v for v in vs)}"
                     for k, vs in manifest.grid.items())
    items.append(("Grid", esc(grid or "(none)")))
    if manifest.models:
        items.append(("Models", esc(", ".join(manifest.models))))
    items.append(("Samples per case", esc(manifest.samples)))
    items.append(("Concurrency", esc(manifest.concurrency)))
    if manifest.totals:
        items.append(("Totals", esc(", ".join(f"{k} {v}" for k, v in manifest.totals.items()))))
    gates = manifest.gates
    g = []
    if gates.min_pass_rate is not None:
        g.append(f"min pass rate {pct(gates.min_pass_rate)}")
    if gates.max_drop is not None:
        g.append(f"max drop {pct(gates.max_drop)}")
    if manifest.required_cases:
        g.append("required cases " + ", ".join(manifest.required_cases))
    items.append(("Gates", esc("; ".join(g) or "(none)")))
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
        f"<title>Eval {esc(suite)} · {esc(run_id)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Eval report: {esc(suite)}</h1>",
    ]
    if manifest is not None and manifest.description:
        out.append(f'<div class="sub">{esc(manifest.description)}</div>')
    out.append('<dl class="meta">')
    for k, v in _meta(manifest, run_id):
        out.append(f"<dt>{esc(k)}</dt><dd>{v}</dd>")
    overall = next((c for c in cells if c["cell"] == OVERALL), None)
    if overall is not None:
        out.append(
            f"<dt>Result</dt><dd>{overall['passed']}/{overall['samples']} samples passed "
            f"({pct(overall['pass_rate'])}), {overall['errored']} errored (never ran), "
            f"{overall['failed']} session(s) failed"
            + (f", cost ${overall['cost_usd']:.4f}" if overall["cost_usd"] is not None else "") + "</dd>"
        )
    out.append("</dl>")
    if gate_failures:
        out.append('<p class="bad">Gates failed:</p><ul class="gates">')
        out.extend(f"<li>{esc(f)}</li>" for f in gate_failures)
        out.append("</ul>")
    else:
        out.append('<p class="ok">Gates passed.</p>')
    out.append("</header>")

    # summary table
    out.append("<section><h2>Summary per cell</h2>")
    rows = []
    for c in cells:
        label = "all cells" if c["cell"] == OVERALL else cell_label(c["cell"])
        name = f"<b>{esc(label)}</b>" if c["cell"] == OVERALL else f'<span title="{esc(c["cell"])}">{esc(label)}</span>'
        rows.append([
            name, esc(c["samples"]), esc(c["completed"]), esc(c["failed"]), esc(c["errored"]), esc(c["passed"]),
            f"{pct(c['pass_rate'])} <small>[{pct(c['pass_lo'])}, {pct(c['pass_hi'])}]</small>",
            f"{num(c['mean_score'], 3)} <small>[{num(c['score_lo'], 3)}, {num(c['score_hi'], 3)}]</small>",
            f"{num(c['latency_p50'])} / {num(c['latency_p95'])}",
            num(c["mean_tokens"], 0),
            "–" if c["cost_usd"] is None else f"${c['cost_usd']:.4f}",
        ])
    out.append(html_table(
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

    out.append(failures_section(lake, results, max_failures, max_trace_events))

    license_text = _license(manifest)
    if license_text:
        out.append(f"<section><h2>License of the cases</h2><pre>{esc(license_text)}</pre></section>")
    out.append(f"<footer><p><small>Generated {esc(when(datetime.now(UTC)))} by troupe.</small></p></footer>")
    out.append("</body></html>")
    return "\n".join(out)


def _case_matrix(cases: list[dict[str, Any]], cell_order: list[str]) -> str:
    grid: dict[str, dict[str, dict[str, Any]]] = {}
    required: dict[str, bool] = {}
    for r in cases:
        grid.setdefault(r["case_id"], {})[r["cell"]] = r
        required[r["case_id"]] = required.get(r["case_id"], False) or bool(r["required"])
    headers = ["Case"] + [esc(cell_label(c)) for c in cell_order]
    rows = []
    for case_id in sorted(grid):
        row = [esc(case_id) + (' <small class="bad">required</small>' if required[case_id] else "")]
        for cell in cell_order:
            entry = grid[case_id].get(cell)
            if entry is None:
                row.append("–")
                continue
            rate = entry["pass_rate"]
            hue = int(120 * rate)  # red (0) to green (120)
            row.append(f'<span class="heat" style="background:hsl({hue},70%,88%);padding:1px 6px" '
                       f'title="mean score {num(entry["mean_score"], 3)}">{entry["passed"]}/{entry["samples"]}</span>')
        rows.append(row)
    return "<section><h2>Cases × cells (passed / samples)</h2>" + html_table(headers, rows) + "</section>"


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


__all__ = ["MAX_FAILURES", "MAX_TRACE_EVENTS", "render_html", "write_html"]
