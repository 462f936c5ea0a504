"""The failures section of the HTML report: each failing sample, why it failed, and its session's
event timeline from the lake (a collapsible ``<details>`` the sample's row links to)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from troupe.evals.analysis import cell_label
from troupe.evals.report_format import cut, esc, html_table, num
from troupe.evals.results import connect

REPLY_EXCERPT: Final = 300


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
            payload = "" if ev["payload"] in (None, "{}") else cut(ev["payload"], 200)
            status = ev["status"] or ""
            cls = ' class="bad"' if status in ("error", "failed") or ev["type"].endswith(".error") else ""
            rows.append([
                num(offset, 3), f"<span{cls}>{esc(ev['type'])}</span>", esc(ev["agent"]), esc(ev["tool"]),
                esc(status), num(ev["duration_ms"], 1), esc(tokens), f'<span class="mono">{esc(payload)}</span>',
            ])
        body = html_table(["+s", "type", "agent", "tool", "status", "ms", "tokens", "payload"], rows, {0, 5})
        if total > len(events):
            body += f"<p>First {len(events)} of {total} events.</p>"
    return f'<details id="{anchor}"><summary>{title}</summary>{body}</details>'


def failures_section(lake: str | Path, results: pa.Table, max_failures: int, max_trace_events: int) -> str:
    """The report's failures section: the first ``max_failures`` failing samples (required cases
    first), each linked to its session's timeline of at most ``max_trace_events`` events."""
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
            esc(r["case_id"]) + (' <small class="bad">required</small>' if r["required"] else ""),
            esc(cell_label(r["cell"])), esc(r["sample"]), esc(r["status"]), esc(why),
            esc(cut(r["reply"], REPLY_EXCERPT)), link,
        ])
    out.append(html_table(["Case", "Cell", "Sample", "Status", "Why", "Reply (excerpt)", "Trace"], rows, {2},
                           {4: "why", 5: "reply"}))
    out.append("<h3>Traces</h3><p><small>Each failing sample's session, from the event lake.</small></p>")
    by_session = {r["session_id"]: r for r in shown if r["session_id"]}
    for sid in sessions:
        r = by_session[sid]
        events, total = traces.get(sid, ([], 0))
        title = (f"<code>{esc(r['case_id'])}</code> · {esc(cell_label(r['cell']))} · sample {esc(r['sample'])} · "
                 f"session <code>{esc(sid)}</code> · {total} events")
        out.append(_trace_html(anchors[sid], title, events, total))
    out.append("</section>")
    return "".join(out)


__all__ = ["failures_section"]
