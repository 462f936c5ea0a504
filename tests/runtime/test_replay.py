"""Replay and fork of recorded sessions in one process (no Ray): zero model calls (the team's model
fails every request once the record is made), zero tool side effects, the same path and lake
content; a divergence names its first event; a fork goes on live from its point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.recovery_team import expected_reply, ledger_items, recovery_team, request_text
from tests.runtime.teams import call, team
from tests.runtime.test_recovery_local import crash, resume_in_a_new_process
from troupe.runtime.agent.recorded import masked
from troupe.runtime.api import Troupe
from troupe.runtime.config import load_team
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.replay.compare import steps
from troupe.runtime.replay.record import RecordTooOldError, UnknownSessionError, load_record, read_rows
from troupe.tools.spec import tool

CALLS: list[str] = []
"""Every request a model function of this module answered (agent names)."""
FAILING = {"on": False}


def flaky(request: LLMRequest, agent: str) -> LLMResponse | str:
    """A model that answers from the request (its last tool result), and fails every request when FAILING."""
    if FAILING["on"]:
        raise RuntimeError("the model endpoint is down (a replay must not ask it)")
    CALLS.append(agent)
    last = request.messages[-1]
    if last.role == "tool":
        return f"the lookup said: {last.content}"
    return LLMResponse(tool_calls=[ToolCall(id=f"c{len(CALLS)}", name="lookup", arguments='{"q": "answer"}')])


SIDE_EFFECTS: list[str] = []


@tool(execution="io")
def lookup(q: str) -> str:
    """Look something up (a side effect: it is counted)."""
    SIDE_EFFECTS.append(q)
    return "42"


@pytest.fixture(autouse=True)
def _reset() -> Any:
    CALLS.clear()
    SIDE_EFFECTS.clear()
    FAILING["on"] = False
    yield
    FAILING["on"] = False


def function_team(**extra: Any) -> Any:
    return team([{"id": "a", "tools": ["lookup"]}], function=f"{__name__}:flaky", **extra)


@pytest.fixture
async def rt(lake: Path) -> Any:
    t = Troupe.local(lake=lake)
    t.registry.register(lookup)
    try:
        yield t
    finally:
        await t.shutdown()


def key_steps(lake: Path, session_id: str) -> dict[str, list[Any]]:
    return {agent: [(s.type, s.key) for s in ss] for agent, ss in steps(read_rows(lake, session_id)).items()}


async def test_a_replay_makes_no_model_call_and_no_side_effect_and_takes_the_same_path(rt: Troupe, lake: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    assert result.reply == "the lookup said: 42" and SIDE_EFFECTS == ["answer"] and len(CALLS) == 2
    FAILING["on"] = True

    report = await rt.replay(result.session_id)
    assert report.identical, report.summary()
    assert report.reply == result.reply and report.status == "completed" and report.exact
    assert SIDE_EFFECTS == ["answer"] and len(CALLS) == 2  # nothing ran again
    assert key_steps(lake, result.session_id) == key_steps(lake, report.session_id)
    started = query(lake, f"""select json_extract_string(payload, '$.replay_of') as src from events
                              where session_id = '{report.session_id}' and type = 'session.started'""").to_pylist()
    assert started == [{"src": result.session_id}]


async def test_the_example_team_replays_identically(rt: Troupe, lake: Path) -> None:
    example = load_team(Path(__file__).resolve().parents[2] / "examples" / "research_team")
    result = await rt.run(example, "compute", timeout=30)
    assert result.ok, result.error
    report = await rt.replay(result.session_id)
    assert report.identical, report.summary()
    assert key_steps(lake, result.session_id) == key_steps(lake, report.session_id)
    assert set(report.steps) == {"lead", "worker_a", "worker_b", "worker_b.checker", "session"}
    compared = {t for ss in key_steps(lake, report.session_id).values() for t, _ in ss}
    assert {"task.created", "task.status", "blackboard.put", "message.sent", "tool.result"} <= compared


async def test_a_conversation_replays_turn_by_turn(rt: Troupe, lake: Path) -> None:
    chat = team([{"id": "a"}], scripts={"a": [{"text": "hello"}, {"text": "bye"}]})
    session = await rt.open(chat, conversation=True)
    await session.send("hi")
    await session.result(timeout=10)
    await session.send("see you")
    await session.result(timeout=10)
    done = await session.end()
    await session.close()
    report = await rt.replay(str(session.id))
    assert report.identical, report.summary()
    assert report.reply == done.reply == "bye"
    turns = query(lake, f"""select json_extract_string(payload, '$.input') as i from events where type = 'turn.finished'
                            and session_id = '{report.session_id}' order by turn""").to_pylist()
    assert [t["i"] for t in turns] == ["hi", "see you"]


async def test_a_changed_tool_schema_stops_the_replay_at_the_first_differing_event(rt: Troupe, lake: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    FAILING["on"] = True

    @tool(name="lookup", execution="io")
    def lookup_v2(query: str) -> str:
        """The same tool, its argument renamed."""
        return "42"

    rt.registry._tools["lookup"] = lookup_v2  # the code changed since the session was recorded
    report = await rt.replay(result.session_id)
    assert not report.identical and report.status == "failed"
    div = report.divergence
    assert div is not None and div.agent == "a"
    assert div.recorded is not None and div.recorded.type == "tool.result"
    assert div.replayed is not None and div.replayed.type == "tool.error"
    recorded_event = query(lake, f"select type from events where event_id = '{div.recorded.event_id}'").to_pylist()
    assert recorded_event == [{"type": "tool.result"}]
    assert "differs from the record" in (report.error or "")
    assert len(CALLS) == 1 + 1 and SIDE_EFFECTS == ["answer"]


async def test_a_fork_at_a_tool_result_goes_on_live_with_the_other_answer(rt: Troupe, lake: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    call_id = query(lake, f"""select json_extract_string(payload, '$.id') as id from events
                              where session_id = '{result.session_id}' and type = 'tool.result'""").to_pylist()[0]["id"]
    forked = await rt.fork(result.session_id, tool_results={call_id: "17"})
    assert forked.ok and forked.reply == "the lookup said: 17"
    assert SIDE_EFFECTS == ["answer"]  # the replaced result did not run the tool
    assert len(CALLS) == 3  # the fork asked the live model once: after its point
    link = query(lake, """select session_id, json_extract_string(payload, '$.forked_from') as parent,
                                 json_extract_string(payload, '$.fork_point') as point
                          from events where type = 'session.started' and json_extract_string(payload, '$.forked_from') is not null""")
    assert link.to_pylist() == [{"session_id": str(forked.session_id), "parent": result.session_id, "point": f"tool:{call_id}"}]


async def test_a_fork_with_a_changed_instruction_and_model(rt: Troupe, lake: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    forked = await rt.fork(result.session_id, at=1, set={"agents.a.instructions": "be brief"}, input="and now?")
    assert forked.ok and forked.reply == "the lookup said: 42"
    rows = read_rows(lake, str(forked.session_id))
    started = next(r for r in rows if r.type == "session.started")
    assert started.data["config"]["agents"][0]["instructions"] == "be brief" and started.data["input"] == "and now?"
    with pytest.raises(ConfigError, match="agents.0.nope does not exist"):
        await rt.fork(result.session_id, at=1, set={"agents.0.nope": "x"})


async def test_clear_errors_for_an_unknown_session_an_unknown_event_and_an_old_record(rt: Troupe, lake: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    with pytest.raises(UnknownSessionError, match="no events"):
        await rt.replay("s-0000000000000000")
    with pytest.raises(ConfigError, match="is not an event of session"):
        await rt.fork(result.session_id, at="nope")
    record = load_record(lake, result.session_id)
    record.config = None
    with pytest.raises(RecordTooOldError, match="without its team config"):
        record.team()


def test_records_keep_full_texts_and_tool_call_ids(lake: Path) -> None:
    long = "x" * 30_000
    from troupe.runtime.events import LLMResponsePayload, ToolResultPayload

    payload = LLMResponsePayload(text=long[:20_000], tool_calls=[{"id": "c1", "name": "n", "arguments": "{}"}], truncated=True)
    assert json.loads(payload.dump_text())["v"] == 2
    assert ToolResultPayload(id="c1", result="y" * 16_040, error_type=None).result == "y" * 16_040


async def test_a_resumed_session_replays_with_no_side_effect_and_the_same_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its record spans two runs (a crash, then ``resume``): the replay runs it as one undisturbed run whose
    turns take the recorded batches (the lead heard of its workers one notice at a time, or both at once)."""
    monkeypatch.setenv("TROUPE_CHAOS_STEP_S", "0.05")
    lake, ledger = tmp_path / "lake", tmp_path / "ledger"
    first = Troupe.local(lake=lake, checkpoints=True)
    session = await first.open(recovery_team())
    await session.send(request_text(ledger, "x"))
    while len(ledger_items(ledger)) < 2:  # both workers' turns are under way: a crash replays them
        await asyncio.sleep(0.01)
    # In one process the first runtime's event log dies with it; on Ray the event log actor outlives the
    # session's actors and keeps their rows. That is the record this test replays: flush, then crash.
    await first.backend.flush()
    crash(first)
    assert (await resume_in_a_new_process(lake, session.id)).reply == expected_reply("x")
    runs = query(lake, f"select count(*) as n from events where session_id = '{session.id}' and type = 'session.resumed'")
    assert runs.to_pylist() == [{"n": 1}]
    batches = load_record(lake, str(session.id)).recordings()["lead"].batches
    assert [len(b) for b in batches] in ([1, 1, 1], [1, 2])  # the user's request, then the two notices

    again = Troupe.local(lake=lake)
    try:
        report = await again.replay(str(session.id))
    finally:
        await again.shutdown()
    assert report.identical, report.summary()
    assert report.reply == expected_reply("x") and report.status == "completed"
    assert sorted(ledger_items(ledger)) == ["x-worker_a", "x-worker_b"]  # the replay wrote nothing
    replayed = load_record(lake, report.session_id).recordings()["lead"].batches
    assert [[(m.sender, masked(m.content)) for m in b] for b in replayed] == [
        [(m.sender, masked(m.content)) for m in b] for b in batches]


@pytest.mark.parametrize("approved", [True, False])
async def test_a_replay_decides_each_approval_as_recorded_without_asking(rt: Troupe, lake: Path, tmp_path: Path,
                                                                        approved: bool) -> None:
    target = tmp_path / "approved.txt"
    cfg = team([{"id": "lead", "tools": ["tests.support.tool_fixtures:approved_write"], "permissions": {"level": "L1"}}],
               scripts={"lead": [{"tool_calls": [call("approved_write", path=str(target))]}, {"text": "finished"}]})
    async with await rt.open(cfg) as session:
        await session.send("go")
        async for event in session.events():
            if event.type == "approval.requested":
                decide = session.approve if approved else session.deny
                await decide(event.data["id"], "looks fine" if approved else "not today")
        result = await session.result(timeout=10)
    assert result.reply == "finished" and target.exists() is approved
    target.unlink(missing_ok=True)

    report = await rt.replay(str(session.id), timeout=20)  # nobody answers: the record does
    assert report.identical, report.summary()
    assert not target.exists()  # the approved call did not run again
    decided = query(lake, f"""select status, json_extract_string(payload, '$.by') as by,
                                     json_extract_string(payload, '$.reason') as reason from events
                              where session_id = '{report.session_id}' and type = 'approval.decided'""").to_pylist()
    assert decided == [{"status": "approved" if approved else "denied", "by": "client",
                        "reason": "looks fine" if approved else "not today"}]
    outcome = query(lake, f"""select type, json_extract_string(payload, '$.result') as result from events
                              where session_id = '{report.session_id}' and type in ('tool.result', 'tool.error')""").to_pylist()
    assert outcome == ([{"type": "tool.result", "result": "done"}] if approved else
                       [{"type": "tool.error", "result": outcome[0]["result"]}])
    assert approved or "did not get it (not today)" in outcome[0]["result"]
    compared = [s.type for s in steps(read_rows(lake, report.session_id))["lead"]]
    assert "approval.decided" in compared
    # A fork at the answer that asked for the call keeps its recorded approval with its result: nobody is asked.
    [asked] = query(lake, f"""select event_id from events where session_id = '{session.id}' and type = 'llm.response'
                              and json_array_length(payload, '$.tool_calls') > 0""").to_pylist()
    forked = await rt.fork(str(session.id), at=asked["event_id"], timeout=20)
    assert forked.reply == "finished" and not target.exists()
    by = query(lake, f"""select json_extract_string(payload, '$.by') as by from events
                         where session_id = '{forked.session_id}' and type = 'approval.decided'""").to_pylist()
    assert by == [{"by": "client"}]


async def test_a_replay_of_a_call_that_now_needs_an_approval_diverges(rt: Troupe, lake: Path, tmp_path: Path) -> None:
    result = await rt.run(function_team(), "what is it?", timeout=20)
    FAILING["on"] = True

    @tool(name="lookup", execution="io", needs_approval=True)
    def guarded(q: str) -> str:
        """The same tool, now behind an approval."""
        return "42"

    rt.registry._tools["lookup"] = guarded
    report = await rt.replay(result.session_id, timeout=20)
    assert not report.identical and report.status == "failed"
    assert "needs an approval the record does not hold" in (report.error or "")
