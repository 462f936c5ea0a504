"""Replays of sessions with memory (no Ray): the automatic recall at the start of a turn is served from the
record (its ``memory.recalled`` events), not from the memory as it is now, and the memory tools answer from the
record; a session replays identically after its project's memory changed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.replay.record import read_rows
from troupe.runtime.session.supervisor import SessionStatus

SUITE = Path(__file__).resolve().parents[2] / "evals/suites/memory"
sys.path.insert(0, str(SUITE))


def memory_team(project: str = "alpha") -> Any:
    return team([{"id": "a", "memory": "project"}], function="memory_model:respond", project=project)


async def run(troupe: Troupe, text: str) -> Any:
    result = await troupe.run(memory_team(), text, timeout=20)
    assert result.status is SessionStatus.COMPLETED, result.error
    return result


def recalled(lake: Path, session_id: str) -> list[dict[str, Any]]:
    """The session's automatic recalls (at the start of a turn)."""
    return [r.data for r in read_rows(lake, session_id) if r.type == "memory.recalled" and r.data["source"] == "turn"]


async def test_a_session_replays_identically_after_its_projects_memory_changed(troupe: Troupe, lake: Path) -> None:
    wrote = await run(troupe, "remember user/colour = The user's favourite colour is teal")  # nothing to recall yet
    used = await run(troupe, "context what is my favourite colour")  # recalls teal at the start of its turn
    assert used.reply == "The user's favourite colour is teal"
    # the project's memory changes: the fact is corrected, and another one matches the same words
    await run(troupe, "update user/colour = The user's favourite colour is orange")
    await run(troupe, "remember cat/colour = The colour of the user's cat is grey")

    for source in (wrote, used):
        report = await troupe.replay(source.session_id)
        assert report.identical, report.summary()
        assert report.reply == source.reply and report.divergence is None
        recorded, replayed = recalled(lake, source.session_id), recalled(lake, report.session_id)
        assert [(r["source"], r["entry_ids"], r.get("text")) for r in replayed] == \
            [(r["source"], r["entry_ids"], r.get("text")) for r in recorded]
    assert recalled(lake, wrote.session_id) == []
    assert "teal" in recalled(lake, used.session_id)[0]["text"]


async def test_memory_tools_answer_from_the_record_and_write_nothing(troupe: Troupe, lake: Path) -> None:
    await run(troupe, "remember user/colour = The user's favourite colour is teal")
    looked = await run(troupe, "recall favourite colour")  # the recall tool
    changed = await run(troupe, "update user/colour = The user's favourite colour is orange")
    for source in (looked, changed):
        report = await troupe.replay(source.session_id)
        assert report.identical, report.summary()
        assert report.reply == source.reply
        ran = [r.type for r in read_rows(lake, report.session_id)
               if r.type.startswith("memory.") and r.data.get("source") != "turn"]
        assert ran == []  # the tools did not run: no write, no tool recall (only the turn's recall, as recorded)
        assert [r["text"] for r in recalled(lake, report.session_id)] == \
            [r["text"] for r in recalled(lake, source.session_id)]
    assert looked.reply == "The user's favourite colour is teal"
    assert (await run(troupe, "recall favourite colour")).reply == "The user's favourite colour is orange"


async def test_a_conversation_replays_each_turns_recall_as_recorded(troupe: Troupe, lake: Path) -> None:
    """Turn 1 recalls nothing (the memory is empty), turn 2 recalls what turn 1 remembered: each replayed turn
    gets its own turn's recall, although the memory now holds more for turn 1's words."""
    session = await troupe.open(memory_team(), conversation=True)
    await session.send("remember user/colour = The user's favourite colour is teal")
    assert (await session.result(timeout=20)).reply == "ok"
    await session.send("context favourite colour")
    assert (await session.result(timeout=20)).reply == "The user's favourite colour is teal"
    await session.end()
    await session.close()
    await run(troupe, "update user/colour = The user's favourite colour is orange")
    report = await troupe.replay(str(session.id))
    assert report.identical, report.summary()
    assert report.reply == "The user's favourite colour is teal"
    assert [r["entry_ids"] for r in recalled(lake, report.session_id)] == \
        [r["entry_ids"] for r in recalled(lake, str(session.id))]


async def test_a_reflecting_planners_sessions_replay_identically_after_their_lessons_were_written(
        troupe: Troupe, lake: Path) -> None:
    from tests.runtime.test_planning_memory import SEEN, reflecting_team

    SEEN.clear()
    first = await troupe.run(reflecting_team(), "What is the total revenue of Q1 and Q2?", timeout=60)
    second = await troupe.run(reflecting_team(), "What is the total revenue of Q1 and Q3?", timeout=60)
    assert first.ok and second.ok, (first.error, second.error)
    assert recalled(lake, first.session_id) == [] and recalled(lake, second.session_id)  # the lesson, recalled
    for source in (first, second):  # the project's memory holds the lessons of both by now
        report = await troupe.replay(source.session_id)
        assert report.identical, report.summary()
        assert report.reply == source.reply
        assert [r["text"] for r in recalled(lake, report.session_id)] == \
            [r["text"] for r in recalled(lake, source.session_id)]


class FakeMemory:
    """The memory service as a v1 record's replay asks it (``recall_for_turn``)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    async def call(self, target: Any, method: str, /, **kwargs: Any) -> Any:
        assert method == "recall_for_turn" and kwargs["agent"] == "a"
        return {"text": "Memory:\n- k: v", "ids": self.ids}


def v1_record() -> Any:
    """A record whose turn 2 (of two) recalled ``mem-1`` with a ``memory.recalled`` v1 (no text kept)."""
    from datetime import UTC, datetime

    from troupe.runtime.replay.record import Row, record_from_rows

    def row(n: int, type_: str, status: str | None = None, **data: Any) -> Row:
        return Row(event_id=f"e{n}", ts=datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC), agent="a", type=type_, status=status,
                   data=data)

    return record_from_rows("s-old", [
        row(1, "message.delivered", id="m1", sender="user", kind="text", content="hello"),
        row(2, "agent.state", "running"),
        row(3, "message.delivered", id="m2", sender="user", kind="text", content="context k"),
        row(4, "agent.state", "running"),
        row(5, "memory.recalled", source="turn", query="context k", entry_ids=["mem-1"], tokens=3),
    ])


async def test_a_record_without_the_recalled_text_replays_while_the_memory_recalls_the_same_entries() -> None:
    from troupe.runtime.agent.recall_turn import turn_recall
    from troupe.runtime.agent.recorded import ReplayDivergenceError, ToolReplay
    from troupe.runtime.messages import Envelope

    recording = v1_record().recordings()["a"]
    assert [(r.turn, r.ids, r.text) for r in recording.recalls] == [(1, ["mem-1"], None)]
    replay = ToolReplay("a", recording)
    batch = [Envelope(session_id="s", sender="user", recipient="a", content="context k")]
    replay.batches.current = 0  # turn 1 recalled nothing: nothing is asked
    assert await turn_recall(replay, FakeMemory(["mem-9"]), "a", "project", batch, None, "s", lambda *a, **k: None) is None
    replay.batches.current = 1
    same = await turn_recall(replay, FakeMemory(["mem-1"]), "a", "project", batch, None, "s", lambda *a, **k: None)
    assert same is not None and same.content == "Memory:\n- k: v" and same.name == "memory"
    with pytest.raises(ReplayDivergenceError, match=r"recorded entries \['mem-1'\], now \['mem-2'\].*memory.recalled v1"):
        await turn_recall(replay, FakeMemory(["mem-2"]), "a", "project", batch, None, "s", lambda *a, **k: None)


def test_a_v1_recall_row_stays_readable() -> None:
    from troupe.runtime.events import MemoryRecalledPayload, parse_payload
    from troupe.runtime.events.memory import MemoryRecalledPayloadV1

    old = parse_payload("memory.recalled", {"source": "turn", "query": "q", "entry_ids": ["mem-1"], "tokens": 3})
    assert isinstance(old, MemoryRecalledPayloadV1) and old.entry_ids == ["mem-1"]
    now = MemoryRecalledPayload(source="turn", query="q", entry_ids=["mem-1"], text="Memory:\n- k: v")
    assert parse_payload("memory.recalled", now.dump_text()) == now and now.dump()["v"] == 2
