"""The CLI's progress view: streaming one agent inline, buffering agents that speak at once."""

from __future__ import annotations

import io

from troupe.runtime.cli.progress import ProgressPrinter
from troupe.runtime.events import make_event


def ev(type: str, agent: str, **payload: object):
    return make_event(type, run_id="r-1", session_id="s-1", agent=agent, payload=payload,
                      model="m", duration_ms=5.0, tokens_in=1, tokens_out=2)


def test_parallel_token_streams_do_not_interleave() -> None:
    out = io.StringIO()
    show = ProgressPrinter(out, color=False)
    for e in [ev("llm.token", "math", text="12"), ev("llm.token", "clock", text="17:"),
              ev("llm.token", "math", text="34"), ev("llm.token", "clock", text="30"),
              ev("llm.response", "math", tool_calls=[]), ev("llm.response", "clock", tool_calls=[])]:
        show(e)
    assert out.getvalue().splitlines() == [
        "[math] 1234",
        "[math] llm m 5 ms, 1+2 tokens -> reply",
        "[clock] 17:30",
        "[clock] llm m 5 ms, 1+2 tokens -> reply",
    ]


def test_tool_results_and_tasks_render_one_line_each() -> None:
    out = io.StringIO()
    show = ProgressPrinter(out, color=False)
    show(ev("tool.result", "math", result="7006652"))
    show(make_event("task.created", run_id="r", session_id="s", agent="lead", task_id="t-1",
                    payload={"assignee": "math", "goal": "1234 * 5678"}))
    assert out.getvalue().splitlines() == ["[math] tool None ok: 7006652", "[lead] task t-1 created for math: 1234 * 5678"]
