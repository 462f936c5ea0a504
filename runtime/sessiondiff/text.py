"""``troupe diff``'s terminal rendering of a :class:`~troupe.runtime.sessiondiff.model.SessionDiff`:
a header, a per-agent table (A → B, and the delta), the first divergence with both sides, the tool
calls that differ, the replies, and each agent's aligned timeline in two columns with a marker
between them (``=`` same, ``~`` changed, ``-`` only in A, ``+`` only in B)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troupe.runtime.sessiondiff.model import AgentDelta, EventView, SessionDiff, SideInfo, Step, Usage

COLLAPSE = 8
"""Runs of more ``=`` rows than this show their first and last three and a count between."""


def _clip(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.0f}ms" if abs(value) >= 10 else f"{value:.1f}ms"


def _signed(value: float, ms: bool = False) -> str:
    if ms:
        return ("+" if value > 0 else "") + _ms(value) if value else "0"
    return f"{value:+d}" if value else "0"


def window(a: str, b: str, width: int) -> tuple[str, str]:
    """``a`` and ``b`` flattened and cut to ``width``, starting a little before their first
    difference when that would be cut off (``…`` marks the cut)."""
    a, b = " ".join(a.split()), " ".join(b.split())
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(same - 12, 0) if same > width - 16 else 0
    cut = (lambda t: t[start:]) if start == 0 else (lambda t: "…" + t[start:])
    return _clip(cut(a), width), _clip(cut(b), width)


def _side_line(label: str, s: SideInfo) -> str:
    lineage = ""
    if s.replay_of:
        lineage = f"  replay of {s.replay_of}"
    elif s.forked_from:
        lineage = f"  fork of {s.forked_from} at {s.fork_point or '?'}"
    return (f"{label}  {s.session_id}  team {s.team or '?'}  run {s.run_id}  {s.status or 'unfinished'}  "
            f"{_ms(s.duration_ms)}  {s.events} events{lineage}")


def _usage_cells(d: AgentDelta) -> list[str]:
    def cell(name: str, ms: bool = False) -> str:
        a: Usage | None = d.a
        b: Usage | None = d.b
        va = "-" if a is None else (_ms(getattr(a, name)) if ms else str(getattr(a, name)))
        vb = "-" if b is None else (_ms(getattr(b, name)) if ms else str(getattr(b, name)))
        delta = getattr(d.delta, name)
        shown = bool(round(delta, 1)) if ms else bool(delta)
        return f"{va}→{vb}" + (f" ({_signed(delta, ms)})" if shown else "")

    counts = f"{d.same}/{d.changed}/{d.only_a}/{d.only_b}"
    return [d.agent, cell("llm_calls"), cell("tokens_in"), cell("tokens_out"), cell("tool_calls"),
            cell("llm_ms", ms=True), cell("tool_ms", ms=True), counts]


def agents_table(diff: SessionDiff) -> list[str]:
    head = ["agent", "llm calls", "tokens in", "tokens out", "tool calls", "llm time", "tool time", "= ~ - +"]
    rows = [_usage_cells(d) for d in [*diff.agents, diff.total]]
    rows[-1][0] = "(all)"
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))  # noqa: E731
    return [fmt(head), "  ".join("-" * w for w in widths), *(fmt(r).rstrip() for r in rows)]


def _event(v: EventView | None, width: int) -> str:
    if v is None:
        return ""
    return _clip(f"{v.at_ms / 1000:7.3f}s {v.summary}", width)


def _changed_pair(s: Step, width: int) -> tuple[str, str]:
    """A ``~`` row's two sides showing the first changed field around where it differs."""
    assert s.a is not None and s.b is not None
    field = s.changed[0] if s.changed else ""
    heads = [f"{v.at_ms / 1000:7.3f}s {v.type}{' ' + v.tool if v.tool else ''} {field}: " for v in (s.a, s.b)]
    room = max(width - max(len(h) for h in heads), 10)
    ta, tb = window(s.a.detail.get(field, ""), s.b.detail.get(field, ""), room)
    return _clip(heads[0] + ta, width), _clip(heads[1] + tb, width)


def divergence_lines(step: Step, width: int) -> list[str]:
    kind = {"~": "changed", "-": "only in A", "+": "only in B"}[step.op]
    ev = step.a or step.b
    assert ev is not None
    lines = [f"First divergence: agent {step.agent}, step {step.index}: {ev.type}"
             f"{' ' + ev.tool if ev.tool else ''} ({kind}{': ' + ', '.join(step.changed) if step.changed else ''})"]
    for label, v in (("A", step.a), ("B", step.b)):
        if v is None:
            lines.append(f"  {label}  (nothing here)")
            continue
        lines.append(f"  {label}  {v.event_id}  +{_ms(v.at_ms)}  {v.type}{' ' + v.tool if v.tool else ''}")
        other = step.b if v is step.a else step.a
        for k, text in v.detail.items():
            if step.changed and k not in step.changed:
                continue
            room = max(width - 12 - len(k), 20)
            shown = window(text, other.detail.get(k, "") if other else "", room)[0]
            lines.append(f"       {k}: {shown}")
    return lines


def tool_lines(diff: SessionDiff, width: int) -> list[str]:
    lines: list[str] = []
    for t in diff.tool_calls:
        if t.kind == "changed" and t.a and t.b:
            lines.append(f"  ~ {t.agent}  {t.a.tool}  ({', '.join(t.fields)})")
            for f in t.fields:
                va, vb = window(str(getattr(t.a, f)), str(getattr(t.b, f)), max(width - 12 - len(f), 20))
                lines += [f"      {f} A: {va}", f"      {f} B: {vb}"]
        else:
            v = t.a if t.kind == "only_a" else t.b
            assert v is not None
            mark = "-" if t.kind == "only_a" else "+"
            lines.append(_clip(f"  {mark} {t.agent}  {v.tool} {v.arguments or ''} → {v.result or v.outcome or '(no outcome)'}",
                               width))
    return lines


def timeline_lines(diff: SessionDiff, width: int, full: bool = False) -> list[str]:
    col = max((width - 12) // 2, 20)
    first = diff.first_divergence
    lines: list[str] = []
    by_agent: dict[str, list[Step]] = {}
    for s in diff.steps:
        by_agent.setdefault(s.agent, []).append(s)
    for agent, steps in by_agent.items():
        lines.append(f"── {agent} " + "─" * max(width - len(agent) - 4, 0))
        run: list[str] = []
        for s in steps:
            mark = ">" if first is not None and (s.agent, s.index) == (first.agent, first.index) else "↕" if s.moved else " "
            left, right = _changed_pair(s, col) if s.op == "~" else (_event(s.a, col), _event(s.b, col))
            text = f"{mark}{s.index:>3} {left.ljust(col)}  {s.op}  {right}".rstrip()
            if s.op == "=":
                run.append(text)
                continue
            lines += _fold(run, full)
            run = []
            lines.append(text)
        lines += _fold(run, full)
    return lines


def _fold(run: list[str], full: bool) -> list[str]:
    """A run of ``=`` rows, its middle folded into a count when it is long."""
    if full or len(run) <= COLLAPSE:
        return run
    return [*run[:3], f"{'':5} = … {len(run) - 6} more the same …", *run[-3:]]


def render_text(diff: SessionDiff, *, width: int = 150, timeline: bool = True, full: bool = False) -> str:
    out = [_side_line("A", diff.a), _side_line("B", diff.b)]
    if not diff.same_team:
        out.append(f"(different teams: {diff.a.team} and {diff.b.team})")
    t = diff.total
    verdict = ("identical: every compared event and the reply are the same" if diff.identical else
               f"different: {t.changed} changed, {t.only_a} only in A, {t.only_b} only in B, {t.same} the same")
    out += [f"Result: {verdict}", "", *agents_table(diff), ""]
    if diff.first_divergence is not None:
        out += [*divergence_lines(diff.first_divergence, width), ""]
    if diff.tool_calls:
        out += [f"Tool calls that differ ({len(diff.tool_calls)}):", *tool_lines(diff, width), ""]
    r = diff.replies
    if r.same and r.status_same:
        out.append(f"Reply (same on both): {_clip(r.a, width - 22) if r.a is not None else '(none)'}")
    else:
        out += [f"Reply A ({diff.a.status}): {_clip(r.a, width - 20)}",
                f"Reply B ({diff.b.status}): {_clip(r.b, width - 20)}"]
    if not r.turns_same:
        out.append(f"Turn replies differ: A {len(diff.a.turn_replies)} turns, B {len(diff.b.turn_replies)} turns")
    if timeline:
        out += ["", "Aligned timeline (A | B; = same, ~ changed, - only in A, + only in B, > first divergence, "
                "↕ the same event in another order):",
                *timeline_lines(diff, width, full)]
    return "\n".join(out) + "\n"


__all__ = ["render_text"]
