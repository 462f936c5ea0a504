"""``troupe diff --html``: one self-contained page (inline CSS; no scripts, fonts, images or links),
so it opens anywhere, offline, and can be attached to a bug report.

Layout: the two sessions, the verdict, the per-agent table, the first divergence, the tool calls
that differ, the replies, then each agent's aligned timeline as a table with A and B in two
columns (rows coloured by ``=``/``~``/``-``/``+``; the first divergence is ``<tr id="first">``,
and the header links to it). Each event's compared fields open in a ``<details>`` element.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troupe.runtime.sessiondiff.model import AgentDelta, EventView, SessionDiff, SideInfo, Step

CLASS = {"=": "eq", "~": "chg", "-": "del", "+": "ins"}
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.timeline td.ev{width:46%;font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}
td.op{text-align:center;font-weight:bold;width:2em}
tr.eq td.ev{color:#666}tr.chg{background:#fff6d6}tr.del td.a{background:#ffe3e3}tr.ins td.b{background:#e2f7e2}
tr.del td.b,tr.ins td.a{background:#fafafa}
tr#first{outline:3px solid #d9480f}
.verdict.same{color:#2b8a3e}.verdict.diff{color:#c92a2a}
details summary{cursor:pointer}dl{margin:.2em 0}dt{font-weight:bold}dd{margin:0 0 .3em 1em;white-space:pre-wrap}
.box{border:1px solid #d9480f;padding:.5em 1em;background:#fff4e6}
.muted{color:#888}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if abs(value) >= 1000 else f"{value:.0f} ms"


def _side(label: str, s: SideInfo) -> str:
    lineage = ""
    if s.replay_of:
        lineage = f"<br>replay of <code>{_e(s.replay_of)}</code>"
    elif s.forked_from:
        lineage = f"<br>fork of <code>{_e(s.forked_from)}</code> at <code>{_e(s.fork_point)}</code>"
    return (f"<tr><th>{label}</th><td><code>{_e(s.session_id)}</code>{lineage}</td><td>{_e(s.team)}</td>"
            f"<td><code>{_e(s.run_id)}</code></td><td>{_e(s.status or 'unfinished')}</td>"
            f"<td class=num>{_ms(s.duration_ms)}</td><td class=num>{s.events}</td><td>{_e(s.input)}</td></tr>")


def _agent_row(d: AgentDelta, name: str | None = None) -> str:
    cells = []
    for field, ms in (("llm_calls", False), ("tokens_in", False), ("tokens_out", False), ("tool_calls", False),
                      ("llm_ms", True), ("tool_ms", True)):
        a = "-" if d.a is None else (_ms(getattr(d.a, field)) if ms else getattr(d.a, field))
        b = "-" if d.b is None else (_ms(getattr(d.b, field)) if ms else getattr(d.b, field))
        delta = getattr(d.delta, field)
        shown = (("+" if delta > 0 else "") + (_ms(delta) if ms else str(delta))) if delta else "0"
        cells.append(f"<td class=num>{a}</td><td class=num>{b}</td><td class=num>{shown}</td>")
    counts = f"{d.same} / {d.changed} / {d.only_a} / {d.only_b}"
    return f"<tr><th>{_e(name or d.agent)}</th>{''.join(cells)}<td class=num>{counts}</td></tr>"


def _agents(diff: SessionDiff) -> str:
    groups = "".join(f"<th colspan=3>{h}</th>" for h in ("llm calls", "tokens in", "tokens out", "tool calls",
                                                          "llm time", "tool time"))
    sub = "<th>A</th><th>B</th><th>Δ</th>" * 6
    body = "".join(_agent_row(d) for d in diff.agents) + _agent_row(diff.total, "(all)")
    return (f"<table class=agents><tr><th rowspan=2>agent</th>{groups}<th rowspan=2>= / ~ / − / +</th></tr>"
            f"<tr>{sub}</tr>{body}</table>")


def _event(v: EventView | None, changed: list[str]) -> str:
    if v is None:
        return "<span class=muted>—</span>"
    fields = "".join(f"<dt>{_e(k)}{' ≠' if k in changed else ''}</dt><dd>{_e(t)}</dd>" for k, t in v.detail.items())
    extra = []
    if v.tokens_in is not None or v.tokens_out is not None:
        extra.append(f"tokens {v.tokens_in or 0} in / {v.tokens_out or 0} out")
    if v.duration_ms is not None:
        extra.append(_ms(v.duration_ms))
    meta = f" <span class=muted>({', '.join(extra)})</span>" if extra else ""
    return (f"<details><summary><span class=muted>+{_ms(v.at_ms)}</span> {_e(v.summary)}{meta}</summary>"
            f"<dl><dt>event</dt><dd>{_e(v.event_id)} (seq {v.seq})</dd>{fields}</dl></details>")


def _is_first(diff: SessionDiff, s: Step) -> bool:
    f = diff.first_divergence
    return f is not None and (f.agent, f.index) == (s.agent, s.index)


def _timelines(diff: SessionDiff) -> str:
    out: list[str] = []
    agent = None
    for s in diff.steps:
        if s.agent != agent:
            if agent is not None:
                out.append("</table>")
            agent = s.agent
            out.append(f"<h3>{_e(agent)}</h3><table class=timeline><tr><th>#</th><th>A</th><th></th><th>B</th></tr>")
        first = " id=first" if _is_first(diff, s) else ""
        moved = " moved" if s.moved else ""
        op = f"{_e(s.op)}<br><span class=muted title='the same event, in another order'>↕</span>" if s.moved else _e(s.op)
        out.append(f"<tr class='step {CLASS[s.op]}{moved}'{first}><td class=num>{s.index}</td>"
                   f"<td class='ev a'>{_event(s.a, s.changed)}</td><td class=op>{op}</td>"
                   f"<td class='ev b'>{_event(s.b, s.changed)}</td></tr>")
    if agent is not None:
        out.append("</table>")
    return "".join(out)


def _divergence(diff: SessionDiff) -> str:
    s = diff.first_divergence
    if s is None:
        return "<p>No divergence: every compared event is the same on both sides.</p>"
    ev = s.a or s.b
    assert ev is not None
    what = ", ".join(s.changed) if s.changed else {"-": "only in A", "+": "only in B"}.get(s.op, "")
    return (f"<div class=box><p><a href='#first'>Agent <b>{_e(s.agent)}</b>, step {s.index}</a>: "
            f"{_e(ev.type)} {_e(ev.tool or '')} ({_e(what)})</p><table><tr><th>A</th><th>B</th></tr>"
            f"<tr><td class=ev>{_event(s.a, s.changed)}</td><td class=ev>{_event(s.b, s.changed)}</td></tr>"
            "</table></div>")


def _tools(diff: SessionDiff) -> str:
    if not diff.tool_calls:
        return "<p>None.</p>"
    rows = []
    for t in diff.tool_calls:
        def cell(v: object) -> str:
            if v is None:
                return "<td class=muted>—</td>"
            return (f"<td><code>{_e(getattr(v, 'tool', ''))}</code> {_e(getattr(v, 'arguments', ''))}<br>"
                    f"→ {_e(getattr(v, 'result', None) or getattr(v, 'outcome', None) or '(no outcome)')}</td>")
        kind = {"changed": "~ " + ", ".join(t.fields), "only_a": "− only in A", "only_b": "+ only in B"}[t.kind]
        rows.append(f"<tr class={CLASS['~' if t.kind == 'changed' else '-' if t.kind == 'only_a' else '+']}>"
                    f"<td>{_e(t.agent)}</td><td>{_e(kind)}</td>{cell(t.a)}{cell(t.b)}</tr>")
    return "<table><tr><th>agent</th><th>how</th><th>A</th><th>B</th></tr>" + "".join(rows) + "</table>"


def render_html(diff: SessionDiff) -> str:
    t = diff.total
    verdict = ("<p class='verdict same'>Identical: every compared event and the reply are the same.</p>"
               if diff.identical else
               f"<p class='verdict diff'>Different: {t.changed} changed, {t.only_a} only in A, {t.only_b} only in B, "
               f"{t.same} the same{'' if diff.same_team else ' (different teams)'}.</p>")
    r = diff.replies
    replies = (f"<table><tr><th>A ({_e(diff.a.status)})</th><td>{_e(r.a)}</td></tr>"
               f"<tr><th>B ({_e(diff.b.status)})</th><td>{_e(r.b)}</td></tr></table>"
               f"<p>{'The same reply.' if r.same else 'The replies differ.'}</p>")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>troupe diff {_e(diff.a.session_id)} {_e(diff.b.session_id)}</title><style>{CSS}</style></head><body>"
        f"<h1>troupe diff</h1><table><tr><th></th><th>session</th><th>team</th><th>run</th><th>status</th>"
        f"<th>duration</th><th>events</th><th>input</th></tr>{_side('A', diff.a)}{_side('B', diff.b)}</table>{verdict}"
        f"<h2>Per agent (Δ = B − A)</h2>{_agents(diff)}"
        f"<h2>First divergence</h2>{_divergence(diff)}"
        f"<h2>Tool calls that differ</h2>{_tools(diff)}"
        f"<h2>Replies</h2>{replies}"
        f"<h2>Aligned timeline</h2><p class=muted>= same · ~ changed · − only in A · + only in B</p>{_timelines(diff)}"
        "</body></html>\n"
    )


__all__ = ["render_html"]
