"""Conversations and simulated users in one process (no Ray): turns, budgets, cancel, the lake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig
from troupe.runtime.errors import TroupeError
from troupe.runtime.llm.types import LLMRequest
from troupe.runtime.session.supervisor import SessionStatus


def chat_team(replies: list[str], **extra: Any) -> TeamConfig:
    return team([{"id": "a"}], scripts={"a": [{"text": r} for r in replies]}, **extra)


def echo(request: LLMRequest, agent: str) -> str:
    """A model that remembers nothing but its context: it says how many user turns it saw."""
    said = [m for m in request.messages if m.role == "user"]
    return f"reply {len(said)} to {said[-1].content}"


def sim_team(replies: list[str], user_says: list[str], **user: Any) -> TeamConfig:
    return team([{"id": "a"}], scripts={"a": [{"text": r} for r in replies],
                                        "user_sim": [{"text": t} for t in user_says]},
                user={"persona": "a customer", **user})


async def test_two_turn_conversation_keeps_the_session_running_between_turns(troupe: Troupe, lake: Path) -> None:
    session = await troupe.open(chat_team(["hello", "bye"]), conversation=True)
    await session.send("hi")
    first = await session.result(timeout=10)
    assert (first.status, first.reply, len(first.turns)) == (SessionStatus.RUNNING, "hello", 1)
    await session.send("and now?")
    second = await session.result(timeout=10)
    assert (second.status, second.reply) == (SessionStatus.RUNNING, "bye")
    assert [(t["turn"], t["input"], t["reply"]) for t in await session.turns()] == [(1, "hi", "hello"),
                                                                                      (2, "and now?", "bye")]
    done = await session.end()
    assert (done.status, done.reply, [t.reply for t in done.turns]) == (SessionStatus.COMPLETED, "bye", ["hello", "bye"])
    with pytest.raises(TroupeError, match="completed"):
        await session.send("more?")
    await session.close()
    turns = rows(lake, "select status, payload from events where type='turn.finished' order by ts")
    assert [json.loads(r["payload"])["turn"] for r in turns] == [1, 2]
    assert rows(lake, "select count(*) n from events where type='session.finished'") == [{"n": 1}]


async def test_a_one_shot_session_still_ends_at_the_first_reply(troupe: Troupe) -> None:
    result = await troupe.run(chat_team(["hello"]), "hi", timeout=10)
    assert (result.status, result.reply, result.turns) == (SessionStatus.COMPLETED, "hello", [])


async def test_sending_again_before_the_reply_is_refused(troupe: Troupe) -> None:
    from troupe.tools.spec import tool

    @tool(name="slow")
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "ok"

    troupe.registry.register(slow)
    cfg = team([{"id": "a", "tools": ["slow"]}], scripts={"a": [{"tool_calls": [{"name": "slow", "arguments": {}}]},
                                                               {"text": "late"}]})
    session = await troupe.open(cfg, conversation=True)
    await session.send("hi")
    with pytest.raises(TroupeError, match="still under way"):
        await session.send("again")
    await session.cancel()
    await session.close()


async def test_budgets_hold_across_turns(troupe: Troupe) -> None:
    session = await troupe.open(chat_team(["one", "two", "three"], budgets={"max_llm_calls": 2}), conversation=True)
    await session.send("1")
    assert (await session.result(timeout=10)).reply == "one"
    await session.send("2")
    assert (await session.result(timeout=10)).reply == "two"
    await session.send("3")  # the third LLM call goes past the conversation's budget
    final = await session.result(timeout=10)
    assert final.status is SessionStatus.BUDGET_EXCEEDED
    assert [t.reply for t in final.turns] == ["one", "two"]
    await session.close()


async def test_cancel_mid_conversation(troupe: Troupe, lake: Path) -> None:
    session = await troupe.open(chat_team(["hello", "bye"]), conversation=True)
    await session.send("hi")
    await session.result(timeout=10)
    await session.cancel("enough")
    final = await session.result(timeout=10)
    assert (final.status, final.error, len(final.turns)) == (SessionStatus.CANCELLED, "enough", 1)
    await session.close()


async def test_simulated_user_talks_three_turns_and_stops_on_the_token(troupe: Troupe, lake: Path) -> None:
    cfg = sim_team(["r1", "r2", "r3"], ["m2", "m3", "thanks ###STOP###"])
    result = await troupe.run(cfg, "m1", timeout=20)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.reply == "r3"
    assert [(t.turn, t.input, t.reply) for t in result.turns] == [(1, "m1", "r1"), (2, "m2", "r2"), (3, "m3", "r3")]
    # The user is an actor like the others: its messages and LLM calls are events.
    sim = rows(lake, "select type, count(*) n from events where agent='user_sim' group by type")
    assert {r["type"]: r["n"] for r in sim}["llm.response"] == 3


async def test_simulated_user_ends_at_max_turns(troupe: Troupe) -> None:
    cfg = sim_team(["r1", "r2", "r3"], ["m2", "m3"], max_turns=2, first_message="hello there")
    result = await troupe.run(cfg, "you want a refund", timeout=20)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert [(t.input, t.reply) for t in result.turns] == [("hello there", "r1"), ("m2", "r2")]


async def test_simulated_user_in_a_packed_run(troupe: Troupe) -> None:
    cfg = sim_team(["r1", "r2"], ["m2", "###STOP###"])
    result = await troupe.run_packed(cfg, "m1", timeout=20)
    assert (result.status, result.reply, len(result.turns)) == (SessionStatus.COMPLETED, "r2", 2)


async def test_conversation_resumes_after_a_crash_between_turns(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = Troupe.local(lake=lake, checkpoints=True)
    cfg = team([{"id": "a"}], function="tests.runtime.test_conversation_local:echo")
    session = await first.open(cfg, conversation=True)
    await session.send("hi")
    assert (await session.result(timeout=10)).reply == "reply 1 to hi"
    sid = str(session.id)
    await first.backend.host.close()  # the process "dies" between turns: no end, no close
    await first.backend.buffer.flush()

    second = Troupe.local(lake=lake, checkpoints=True)
    try:
        back = await second.resume(sid)
        await back.send("and now?")
        turn = await back.result(timeout=10)
        # the agent came back with its context: the second turn's model call saw both user messages
        assert (turn.status, turn.reply, [t.turn for t in turn.turns]) == (SessionStatus.RUNNING, "reply 2 to and now?", [1, 2])
        done = await back.end()
        assert (done.status, done.reply, len(done.turns)) == (SessionStatus.COMPLETED, "reply 2 to and now?", 2)
        await back.close()
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_a_say_retried_after_the_supervisor_restarted_answers_the_turn_it_opened() -> None:
    """Ray re-runs an actor call whose actor died before answering: the supervisor may have opened the turn
    and checkpointed it already (CI saw "turn 2 is still under way" on such a retry)."""
    from troupe.runtime.config import Budgets
    from troupe.runtime.ids import AgentId, RunId, SessionId
    from troupe.runtime.session.supervisor import Supervisor

    def make() -> Supervisor:
        return Supervisor(session_id=SessionId("s-retry"), run_id=RunId("r-retry"), entry=AgentId("a"),
                          budgets=Budgets(), emit=lambda payload, **fields: None, conversation=True)

    first = make()
    first.start(input="hi", team="t", placement="dedicated")
    await first._turn_done("hello", answers="m1")
    assert first.say(text="and now?", request="req-2") == 2
    restarted = make()
    restarted.restore(first.snapshot())  # it died after its checkpoint, before the client heard back
    assert restarted.say(text="and now?", request="req-2") == 2  # the retried call: the same turn
    with pytest.raises(TroupeError, match="turn 2 is still under way"):
        restarted.say(text="and now?", request="req-3")  # a new send is still refused
    with pytest.raises(TroupeError, match="turn 2 is still under way"):
        restarted.say(text="and now?")
