"""``troupe diff``: two real sessions (scripted models, local placement) written to a real lake,
compared by :func:`troupe.runtime.sessiondiff.diff_sessions`, the facade and the CLI."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.conftest import EXAMPLE_TEAM
from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main
from troupe.runtime.config import TeamConfig
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.sessiondiff import SessionDiff, UnknownSessionError, diff_sessions
from troupe.runtime.sessiondiff.align import build_diff
from troupe.runtime.sessiondiff.model import TABLE_SCHEMA, EventView, SideInfo
from troupe.tools.spec import tool

WEATHER = {"oslo": "rain, 7C"}


@tool(name="weather")
async def weather(city: str) -> str:
    """Today's weather in a city."""
    return WEATHER[city]


def lookup_team(worker_reply: str = "Oslo: rain") -> TeamConfig:
    """A lead that hands a task to a worker, which calls one tool and answers; the lead relays it."""
    return team([
        {"id": "lead", "tools": ["task_create", "task_wait"]},
        {"id": "worker", "tools": ["weather"]},
    ], scripts={
        "lead": [
            {"tool_calls": [call("task_create", task_id="t-w", assignee="worker", goal="weather in Oslo")]},
            {"tool_calls": [call("task_wait", task_ids=["t-w"])]},
            {"text": "done: see the worker"},
        ],
        "worker": [
            {"tool_calls": [call("weather", city="oslo")]},
            {"text": worker_reply},
        ],
    })


async def run(troupe: Troupe, cfg: TeamConfig | Path, text: str = "weather?") -> str:
    result = await troupe.run(cfg, text, timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    return str(result.session_id)


def lake_usage(lake: Path, session_id: str, agent: str) -> dict[str, int]:
    return rows(lake, "select count(*) filter (where type='llm.response') calls, sum(tokens_in)::BIGINT tin, "
                      f"sum(tokens_out)::BIGINT tout from events where session_id='{session_id}' and agent='{agent}'")[0]


@pytest.fixture
def registered(troupe: Troupe) -> Troupe:
    troupe.registry.register(weather)
    WEATHER["oslo"] = "rain, 7C"
    return troupe


async def test_two_runs_of_the_same_scripts_do_not_diverge(troupe: Troupe, lake: Path) -> None:
    a, b = await run(troupe, EXAMPLE_TEAM, "What is 1234 * 5678?"), await run(troupe, EXAMPLE_TEAM, "What is 1234 * 5678?")
    diff = diff_sessions(lake, a, b)
    assert diff.identical and diff.first_divergence is None and diff.same_team, diff.text()
    assert {s.op for s in diff.steps} == {"="} and not diff.tool_calls
    assert {"lead", "worker_a", "worker_b", "worker_b.checker", "session"} <= {d.agent for d in diff.agents}
    assert diff.total.a is not None and diff.total.a.tool_calls >= 9 and diff.total.delta.tokens_in == 0
    assert diff.replies.same and diff.replies.a and "7006652" in diff.replies.a
    text, full = diff.text(), diff.text(full=True)
    assert "Result: identical" in text and "more the same" in text and "more the same" not in full
    assert len(full.splitlines()) > len(text.splitlines())


async def test_a_different_tool_result_is_the_first_divergence(registered: Troupe, lake: Path) -> None:
    a = await run(registered, lookup_team())
    WEATHER["oslo"] = "sunny and very warm for the season, 25C"
    b = await run(registered, lookup_team())
    diff = await registered.diff(a, b)
    first = diff.first_divergence
    assert first is not None and first.agent == "worker" and first.op == "~", diff.text()
    assert first.a and first.b and first.a.type == first.b.type == "tool.result" and first.a.tool == "weather"
    assert first.changed == ["result"] and first.b.detail["result"] == "sunny and very warm for the season, 25C"
    changed = [t for t in diff.tool_calls if t.kind == "changed"]
    assert [(t.agent, t.a.tool if t.a else None, t.fields) for t in changed] == [("worker", "weather", ["result"])]
    # The worker's next prompt is longer by the result; the deltas are the lake's own sums.
    worker = next(d for d in diff.agents if d.agent == "worker")
    ua, ub = lake_usage(lake, a, "worker"), lake_usage(lake, b, "worker")
    assert worker.delta.tokens_in == ub["tin"] - ua["tin"] > 0
    assert worker.delta.tokens_out == ub["tout"] - ua["tout"] == 0 and worker.delta.llm_calls == 0
    assert diff.replies.same and not diff.identical
    assert diff.total.delta.tokens_in == sum(d.delta.tokens_in for d in diff.agents)


async def test_a_different_model_reply_is_the_first_divergence(registered: Troupe, lake: Path) -> None:
    a = await run(registered, lookup_team("Oslo: rain"))
    b = await run(registered, lookup_team("Oslo has rain today, seven degrees, bring an umbrella"))
    diff = diff_sessions(lake, a, b)
    first = diff.first_divergence
    assert first is not None and first.agent == "worker" and first.a and first.a.type == "llm.response", diff.text()
    assert "text" in first.changed and first.b and first.b.detail["text"].startswith("Oslo has rain")
    # The worker's tool call is the same; the lead's task_wait returns the worker's other output.
    assert [(t.agent, t.kind, t.a.tool if t.a else None, t.fields) for t in diff.tool_calls] == [
        ("lead", "changed", "task_wait", ["result"])]
    worker = next(d for d in diff.agents if d.agent == "worker")
    ua, ub = lake_usage(lake, a, "worker"), lake_usage(lake, b, "worker")
    assert worker.delta.tokens_out == ub["tout"] - ua["tout"] > 0
    assert worker.a and worker.a.tokens_out == ua["tout"] and worker.b and worker.b.tokens_in == ub["tin"]
    # The lead's task_wait result carries the worker's output: a later divergence, not the first.
    lead_steps = [s for s in diff.steps if s.agent == "lead" and s.op != "="]
    assert lead_steps and all(s.a and s.a.at_ms >= first.a.at_ms for s in lead_steps)


async def test_a_session_of_another_team(registered: Troupe, lake: Path) -> None:
    a = await run(registered, EXAMPLE_TEAM, "What is 1234 * 5678?")
    b = await run(registered, lookup_team(), "What is 1234 * 5678?")
    diff = diff_sessions(lake, a, b)
    assert not diff.same_team and not diff.identical and not diff.replies.same
    by = {d.agent: d for d in diff.agents}
    assert by["worker_a"].b is None and by["worker_a"].only_a > 0 and by["worker"].a is None and by["worker"].only_b > 0
    assert by["worker_a"].delta.tool_calls == -by["worker_a"].a.tool_calls  # type: ignore[union-attr]
    only_a = {t.a.tool for t in diff.tool_calls if t.kind == "only_a" and t.a}
    assert {"calculator", "blackboard_put"} <= only_a
    assert diff.first_divergence is not None
    text = diff.text()
    assert "different teams" in text and "research_team" in text


async def test_table_is_the_aligned_timeline(registered: Troupe, lake: Path) -> None:
    a = await run(registered, lookup_team())
    WEATHER["oslo"] = "snow"
    b = await run(registered, lookup_team())
    diff = diff_sessions(lake, a, b)
    timeline = diff.table()
    assert timeline.schema.equals(TABLE_SCHEMA) and timeline.num_rows == len(diff.steps)
    flagged = duckdb.execute("select agent, op, a_type, b_summary from timeline where first_divergence").fetchall()
    assert flagged == [("worker", "~", "tool.result", "tool.result weather snow")]
    ops = dict(duckdb.execute("select op, count(*) from timeline group by op").fetchall())
    assert ops["="] > 5 and ops["~"] >= 1


async def test_unknown_sessions_are_clear_errors(registered: Troupe, lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = await run(registered, lookup_team())
    with pytest.raises(UnknownSessionError, match=rf"no session 's-nothere' in the lake at .*recent sessions: {a}"):
        diff_sessions(lake, a, "s-nothere")
    with pytest.raises(UnknownSessionError, match="invalid session id"):
        diff_sessions(lake, "'; drop", a)
    assert diff_sessions(lake, a, a[:6]).identical  # a unique prefix is enough
    assert main(["diff", a, "s-nothere", "--lake", str(lake)]) == 2
    assert "no session 's-nothere'" in capsys.readouterr().err
    assert main(["diff", "s-x", "s-y", "--lake", str(lake / "empty")]) == 2
    assert "the lake has no sessions" in capsys.readouterr().err


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_cli_text_json_and_html(registered: Troupe, lake: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    a = await run(registered, lookup_team())
    WEATHER["oslo"] = "<b>hail</b> & wind"
    b = await run(registered, lookup_team())
    assert main(["diff", a, b, "--lake", str(lake)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"A  {a}") and f"B  {b}" in out
    assert "First divergence: agent worker" in out and "tool.result weather" in out and "result: <b>hail</b>" in out
    assert "Tool calls that differ (1)" in out and "── worker" in out
    assert any(line.startswith(">") and "  ~  " in line for line in out.splitlines())

    assert main(["diff", a, b, "--lake", str(lake), "--json"]) == 0
    model = SessionDiff.model_validate_json(capsys.readouterr().out)
    assert model.first_divergence is not None and model.first_divergence.agent == "worker"
    assert model.a.session_id == a and model.b.session_id == b

    page_file = tmp_path / "d.html"
    assert main(["diff", a, b, "--lake", str(lake), "--html", str(page_file)]) == 0
    assert str(page_file) in capsys.readouterr().out
    page = _Page()
    html = page_file.read_text()
    page.feed(html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "style" in tags
    assert not any(v and ("http" in v or "//" in v) for _, attrs in page.tags for v in attrs.values())
    first = [attrs for t, attrs in page.tags if t == "tr" and attrs.get("id") == "first"]
    assert len(first) == 1 and "chg" in (first[0].get("class") or "")
    assert "<b>hail</b> & wind" in "".join(page.text)  # escaped in the page, intact as text
    rows_ = [attrs for t, attrs in page.tags if t == "tr" and "step" in (attrs.get("class") or "")]
    assert len(rows_) == len(model.steps)
    assert sum("eq" in (r.get("class") or "") for r in rows_) == sum(s.op == "=" for s in model.steps)


def test_diff_keys_mask_random_ids_and_times() -> None:
    from troupe.runtime.sessiondiff.records import normalize

    assert normalize("New task t-dac706784fb80ab3 at 2026-01-02T03:04:05.123+00:00") == "New task <id> at <ts>"
    assert normalize("t-mul stays") == "t-mul stays"


def _ev(i: int, type_: str, key: str, agent: str = "a", **kw: object) -> EventView:
    return EventView(event_id=f"e{i}{key}", type=type_, agent=agent, seq=i, at_ms=float(i), key=key,
                     summary=f"{type_} {key}", field_keys={"x": key}, **kw)


def test_alignment_marks_and_lineage_without_a_lake() -> None:
    """The core alone: ~ pairs same-kind events, - and + the rest; the first divergence is in order;
    a fork's lineage (read defensively from session.started) shows in the header."""
    a = [_ev(0, "llm.response", "k0"), _ev(1, "tool.call", "k1", tool="t"), _ev(2, "tool.result", "r1", tool="t"),
         _ev(3, "message.sent", "m1")]
    b = [_ev(0, "llm.response", "k0"), _ev(1, "tool.call", "k1", tool="t"), _ev(2, "tool.result", "r2", tool="t"),
         _ev(3, "agent.error", "x"), _ev(4, "message.sent", "m1")]
    info = {"run_id": "r-1", "started_at": "2026-01-01T00:00:00+00:00", "team": "t", "status": "completed"}
    diff = build_diff(SideInfo(session_id="s-a", **info), a,
                      SideInfo(session_id="s-b", forked_from="s-a", fork_point="event:e2", **info), b)
    assert [s.op for s in diff.steps] == ["=", "=", "~", "+", "="]
    assert diff.first_divergence is not None and diff.first_divergence.index == 2
    assert diff.first_divergence.changed == ["x"]
    assert "fork of s-a at event:e2" in diff.text()
    assert (diff.total.same, diff.total.changed, diff.total.only_a, diff.total.only_b) == (3, 1, 0, 1)


def test_concurrent_work_finishing_in_another_order_is_not_a_divergence() -> None:
    """Two tool calls of one turn finish in either order; a twin found a few rows away is ``=`` (moved)."""
    c1, c2 = _ev(0, "tool.call", "c1", tool="t"), _ev(1, "tool.call", "c2", tool="t")
    r1, r2 = _ev(2, "tool.result", "r1", tool="t"), _ev(3, "tool.result", "r2", tool="t")
    info = {"run_id": "r-1", "started_at": "2026-01-01T00:00:00+00:00", "session_id": "s-a"}
    for a, b in (([c1, c2, r1, r2], [c1, r1, c2, r2]), ([c1, c2, r1, r2], [c1, c2, r2, r1])):
        diff = build_diff(SideInfo(**info), a, SideInfo(**info), b)
        assert [s.op for s in diff.steps] == ["="] * 4 and diff.identical, diff.text()
        assert sum(s.moved for s in diff.steps) == 1 and "↕" in diff.text()
    far = [c1, *(_ev(10 + i, "message.sent", f"m{i}") for i in range(20)), r1]
    diff = build_diff(SideInfo(**info), [r1, *far[:-1]], SideInfo(**info), far)  # r1 moved 21 rows: a change
    assert not diff.identical and [s.op for s in diff.steps if s.op != "="] == ["-", "+"]


def answer_from_lookup(request: LLMRequest, agent: str) -> LLMResponse | str:
    """A model that looks something up, then repeats what the lookup said."""
    last = request.messages[-1]
    if last.role == "tool":
        return f"the lookup said: {last.content}"
    return LLMResponse(tool_calls=[ToolCall(id="c1", name="weather", arguments='{"city": "oslo"}')])


async def test_a_replay_is_identical_and_a_fork_diverges_at_its_tool_result(registered: Troupe, lake: Path) -> None:
    original = await run(registered, EXAMPLE_TEAM, "What is 1234 * 5678?")
    replay = await registered.replay(original)
    diff = await registered.diff(original, replay.session_id)
    assert diff.identical and diff.b.replay_of == original, diff.text()
    assert f"replay of {original}" in diff.text()

    looked_up = await run(registered, team([{"id": "a", "tools": ["weather"]}], function=f"{__name__}:answer_from_lookup"))
    call_id = rows(lake, f"select json_extract_string(payload, '$.id') id from events where session_id = '{looked_up}' "
                         "and type = 'tool.result'")[0]["id"]
    forked = await registered.fork(looked_up, tool_results={call_id: "hail"})
    diff = diff_sessions(lake, looked_up, str(forked.session_id))
    first = diff.first_divergence
    assert first is not None and first.agent == "a" and first.b and first.b.type == "tool.result", diff.text()
    assert first.changed == ["result"] and first.b.detail["result"] == "hail"
    assert diff.b.forked_from == looked_up and diff.b.fork_point == f"tool:{call_id}"
    assert diff.replies.a == "the lookup said: rain, 7C" and diff.replies.b == "the lookup said: hail"
