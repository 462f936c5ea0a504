"""Cancelling one turn of a conversation in one process (no Ray): the turn's work stops, nothing is left
open in the lake, and the same session takes the next turn with the cancelled one in its context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.lakes import rows
from tests.support.turn_cancel_team import cancel_team
from troupe.runtime.agent.context import STOPPED_RESULT, Context
from troupe.runtime.api import Troupe
from troupe.runtime.errors import TroupeError
from troupe.runtime.llm.types import ChatMessage, ToolCall
from troupe.runtime.session.supervisor import SessionStatus


async def _until(check: object, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_cancelling_a_turn_stops_its_tool_call_and_the_next_turn_goes_on_in_the_same_session(
        troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    session = await troupe.open(cancel_team(), conversation=True)
    await session.send(f"wait in {tmp_path}")
    await _until(lambda: (tmp_path / "slow.start").exists(), "the tool to start")
    done = await session.cancel_turn("the user pressed stop")
    assert (done.turn, done.cancelled) == (1, True)
    assert (tmp_path / "slow.cancelled").exists()  # the tool itself was stopped, before cancel_turn returned
    assert (await session.describe("a"))["state"] == "idle"
    first = await session.result(timeout=5)
    assert (first.status, first.reply, first.error) == (SessionStatus.RUNNING, None, "turn 1 was cancelled")
    await session.send("what did I ask first?")
    second = await session.result(timeout=10)
    assert (second.status, second.reply) == (SessionStatus.RUNNING, f"first: wait in {tmp_path} | stopped: 1 | noted: True")
    assert [(t["turn"], t["cancelled"]) for t in await session.turns()] == [(1, True), (2, False)]
    assert (await session.cancel_turn()).model_dump() == {"turn": None, "cancelled": False, "tasks": []}  # idle
    await session.end()
    await session.close()
    got = rows(lake, f"select type, status, turn, payload from events where session_id = '{session.id}' and type in "
                     "('tool.call', 'tool.error', 'tool.result', 'turn.cancelled', 'turn.finished', 'session.finished') "
                     "order by ts")
    assert [(r["type"], r["status"], r["turn"]) for r in got] == [
        ("tool.call", None, 1), ("tool.error", "cancelled", 1), ("turn.cancelled", "cancelled", 1),
        ("turn.finished", "ok", 2), ("session.finished", "completed", 2)]
    cancelled = json.loads(got[2]["payload"])
    assert (cancelled["turn"], cancelled["input"], cancelled["reason"]) == (1, f"wait in {tmp_path}", "the user pressed stop")
    assert rows(lake, f"select count(*) n from events where session_id = '{session.id}' and type = 'agent.state' "
                      "and status = 'cancelled'") == [{"n": 1}]


async def test_cancelling_a_turn_denies_its_pending_approval_and_cancels_its_open_tasks(
        troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    session = await troupe.open(cancel_team(), conversation=True)
    await session.send(f"ask in {tmp_path}")
    for _ in range(250):
        if await session.approvals():
            break
        await asyncio.sleep(0.02)
    [pending] = await session.approvals()
    done = await session.cancel_turn()
    assert done.cancelled and len(done.tasks) == 1
    assert await session.approvals() == []
    [task] = await session.tasks()
    assert str(task.status) == "cancelled" and task.turn == 1
    await session.send("and now?")
    assert (await session.result(timeout=10)).reply == "first: ask in " + str(tmp_path) + " | stopped: 1 | noted: True"
    await session.end()
    await session.close()
    decided = rows(lake, f"select status, payload from events where session_id = '{session.id}' and type = 'approval.decided'")
    assert [r["status"] for r in decided] == ["denied"]
    assert json.loads(decided[0]["payload"])["id"] == pending["id"]
    assert rows(lake, f"select count(*) n from events where session_id = '{session.id}' and type = 'task.status' "
                      "and status = 'cancelled'") == [{"n": 1}]


async def test_only_a_conversation_has_turns_to_cancel(troupe: Troupe, tmp_path: Path) -> None:
    session = await troupe.open(cancel_team())
    await session.send(f"wait in {tmp_path}")
    with pytest.raises(TroupeError, match="cancel the session instead"):
        await session.cancel_turn()
    await session.cancel()
    await session.close()


def test_close_calls_answers_the_open_calls_of_the_last_round_only() -> None:
    context = Context(system="s", budget_tokens=10_000)
    calls = [ToolCall(id="c1", name="x", arguments="{}"), ToolCall(id="c2", name="y", arguments="{}")]
    context.add(ChatMessage(role="user", content="go"))
    context.add(ChatMessage(role="assistant", tool_calls=calls))
    context.add(ChatMessage(role="tool", content="one", tool_call_id="c1", name="x"))
    assert context.close_calls() == 1
    assert [(m.role, m.tool_call_id, m.content) for m in context.messages[1:]] == [
        ("assistant", None, None), ("tool", "c1", "one"), ("tool", "c2", STOPPED_RESULT)]
    assert context.close_calls() == 0  # idempotent
