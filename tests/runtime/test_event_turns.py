"""The ``turn`` column: every event of a conversation's turn carries its number (one process, no Ray);
lakes written before the column are still read, together with new files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import LakeWriter, compact_run, partition_dir, query
from troupe.runtime.events import (
    ARROW_SCHEMA,
    EVENT_SCHEMA_VERSION,
    SessionStartedPayload,
    events_to_columns,
    make_event,
)
from troupe.runtime.session.supervisor import SessionStatus


def delegating_team() -> object:
    """``a`` answers turn 1 with a tool call; in turn 2 it hands ``b`` a task and waits for it."""
    return team([{"id": "a", "tools": ["calculator", "task_create", "task_wait"]}, {"id": "b"}], scripts={
        "a": [{"tool_calls": [call("calculator", expression="1+2")]}, {"text": "three"},
              {"tool_calls": [call("task_create", goal="say done", assignee="b", task_id="t1")]},
              {"tool_calls": [call("task_wait", task_ids=["t1"])]}, {"text": "b is done"}],
        "b": [{"text": "done"}],
    })


async def test_every_event_of_a_two_turn_conversation_carries_its_turn(troupe: Troupe, lake: Path) -> None:
    session = await troupe.open(delegating_team(), conversation=True)  # type: ignore[arg-type]
    await session.send("what is 1+2?")
    assert (await session.result(timeout=10)).reply == "three"
    await session.send("now ask b")
    second = await session.result(timeout=10)
    assert (second.status, second.reply) == (SessionStatus.RUNNING, "b is done")
    await session.end()
    await session.close()
    by_turn = rows(lake, "select turn, list(distinct agent || ':' || type order by agent || ':' || type) what "
                         "from events group by turn order by turn")
    seen = {r["turn"]: set(r["what"]) for r in by_turn}
    assert set(seen) == {1, 2}, seen  # no event of this conversation is left without a turn
    assert {"session:session.started", "a:message.delivered", "a:llm.request", "a:llm.response", "a:tool.call",
            "a:tool.result", "a:message.sent", "session:turn.finished"} <= seen[1]
    assert {"a:message.delivered", "a:llm.response", "a:tool.call", "a:task.created", "b:message.delivered",
            "b:llm.request", "b:llm.response", "b:task.status", "session:turn.finished",
            "session:session.finished"} <= seen[2]
    assert not {w for w in seen[1] if w.startswith("b:") or ":task." in w}  # b worked in turn 2 only
    finished = rows(lake, "select turn, json_extract(payload, '$.turn')::int said from events where type='turn.finished'")
    assert sorted((r["turn"], r["said"]) for r in finished) == [(1, 1), (2, 2)]
    # The SQL of docs/conversations.md: one turn's LLM calls.
    assert rows(lake, "select count(*) n from events where turn = 2 and agent = 'b' and type = 'llm.response'") == [{"n": 1}]
    assert {"a:agent.state", "b:agent.state"} <= seen[2]


async def test_a_one_shot_session_is_turn_1(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(team([{"id": "a", "tools": ["calculator"]}], scripts={"a": [
        {"tool_calls": [call("calculator", expression="2*3")]}, {"text": "six"}]}), "2*3?", timeout=10)
    assert result.reply == "six"
    turns = rows(lake, "select distinct turn from events order by turn")
    assert turns == [{"turn": 1}]


def _old_file(lake: Path, run_id: str) -> None:
    """A part file as lakes were written before the ``turn`` column (schema version 1)."""
    ev = make_event(SessionStartedPayload(input="old", team="t", placement="packed", entry="a", budgets={}), run_id=run_id,
                    session_id="s-old", agent="session", schema_version=1)
    cols = events_to_columns([ev])
    del cols["turn"]
    old_schema = pa.schema([f for f in ARROW_SCHEMA if f.name != "turn"])
    table = pa.Table.from_pydict(cols, schema=old_schema)
    folder = partition_dir(lake, ev.ts.date().isoformat(), run_id)
    Path(folder).mkdir(parents=True)
    pq.write_table(table, Path(folder) / "part-old.parquet")


def _new_rows(lake: Path, run_id: str) -> None:
    ev = make_event(SessionStartedPayload(input="new", team="t", placement="packed", entry="a", budgets={}), run_id=run_id,
                    session_id="s-new", agent="session", turn=1)
    LakeWriter(lake).write(events_to_columns([ev]))


def test_an_old_file_without_the_turn_column_is_read_with_new_ones(lake: Path) -> None:
    _old_file(lake, "r-old")
    _new_rows(lake, "r-new")
    got = rows(lake, "select run_id, schema_version v, turn from events order by run_id")
    assert got == [{"run_id": "r-new", "v": EVENT_SCHEMA_VERSION, "turn": 1}, {"run_id": "r-old", "v": 1, "turn": None}]
    assert rows(lake, "select session_id from events where turn = 1") == [{"session_id": "s-new"}]
    # Compacting a run that mixes both keeps every row, the old one's turn null.
    _new_rows(lake, "r-old")
    assert compact_run(lake, "r-old").files_after == 1
    mixed = rows(lake, "select session_id, turn from events where run_id = 'r-old' order by session_id")
    assert mixed == [{"session_id": "s-new", "turn": 1}, {"session_id": "s-old", "turn": None}]


def test_the_dataset_path_of_a_remote_lake_reads_old_files_too(lake: Path) -> None:
    """A lake off this machine is scanned as a pyarrow dataset with the view's schema: an old file's
    missing ``turn`` reads as null there too (a subtree filesystem stands in for an object store)."""
    import pyarrow.fs as pafs

    from troupe.runtime.storage.location import Storage

    _old_file(lake, "r-old")
    _new_rows(lake, "r-new")
    remote = Storage(pafs.SubTreeFileSystem(str(lake), pafs.LocalFileSystem()), "", "mock://lake")
    assert not remote.local
    got = query(remote, "select run_id, turn from events order by run_id").to_pylist()
    assert got == [{"run_id": "r-new", "turn": 1}, {"run_id": "r-old", "turn": None}]
