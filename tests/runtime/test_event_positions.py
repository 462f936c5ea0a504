"""Stream positions: the event log numbers each session's lasting events as it accepts them, writes
the number with the row, hands it to live tails, keeps it through write-ahead log recovery, and a
log that meets a session it did not open (resumed, or after a restart) goes on after the lake's."""

from __future__ import annotations

from pathlib import Path

from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.eventlog.lake import LakeWriter, query
from troupe.runtime.eventlog.positions import last_in_lake
from troupe.runtime.events import Event, events_to_columns, make_event
from troupe.runtime.storage.location import open_storage


def _evs(n: int, *, session: str = "s1", run_id: str = "r1", type: str = "tool.call") -> list[Event]:
    return [make_event(type, run_id=run_id, session_id=session, seq=i, payload={"i": i}) for i in range(n)]  # type: ignore[arg-type]


def _positions(lake: Path, session: str) -> dict[str, int | None]:
    rows = query(lake, f"SELECT event_id, position FROM events WHERE session_id = '{session}'").to_pylist()
    return {r["event_id"]: r["position"] for r in rows}


async def test_positions_follow_acceptance_per_session_and_reach_lake_and_tails(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    log.open_sessions(["s1", "s2"])
    cursor = log.subscribe("s1")
    a, b = _evs(3), _evs(2, session="s2")
    late_first = _evs(1)[0].model_copy(update={"seq": -1})  # an earlier seq that reaches the log later
    token = make_event("llm.token", run_id="r1", session_id="s1", payload={"text": "x"})  # type: ignore[arg-type]
    await log.append(events_to_columns([a[0], b[0], token, a[1]]))
    await log.append(events_to_columns([b[1], a[2], late_first]))
    rows, _ = await log.read("s1", cursor, 0)
    assert [(r["event_id"], r["position"]) for r in rows] == [
        (a[0].event_id, 1), (token.event_id, None), (a[1].event_id, 2), (a[2].event_id, 3), (late_first.event_id, 4)]
    await log.flush()
    assert _positions(tmp_path, "s1") == {a[0].event_id: 1, a[1].event_id: 2, a[2].event_id: 3, late_first.event_id: 4}
    assert _positions(tmp_path, "s2") == {b[0].event_id: 1, b[1].event_id: 2}
    assert log.stats()["position_lookups"] == 0  # both declared new: no look at the lake


async def test_write_ahead_log_recovery_keeps_positions_and_the_counter(tmp_path: Path) -> None:
    lake, wal = tmp_path / "lake", tmp_path / "wal"
    first = EventLogCore(lake, wal_dir=wal)
    first.open_sessions(["s1"])
    sent = _evs(5)
    await first.append(events_to_columns(sent[:2]))
    await first.flush()  # 1, 2 in Parquet
    await first.append(events_to_columns(sent[2:]))  # 3, 4, 5 only in the write-ahead log
    first._wal.close()  # type: ignore[union-attr]  (the process dies: its lock goes, its segments stay)
    second = EventLogCore(lake, wal_dir=wal)  # recovers 3..5 into the lake
    assert _positions(lake, "s1") == {e.event_id: i + 1 for i, e in enumerate(sent)}
    await second.append(events_to_columns(sent[2:]))  # a producer re-sending the batch it saw acknowledged: not again
    more = _evs(2)
    await second.append(events_to_columns(more))
    await second.close()
    got = _positions(lake, "s1")
    assert [got[e.event_id] for e in more] == [6, 7] and len(got) == 7


async def test_a_resumed_session_goes_on_after_the_lakes_positions(tmp_path: Path) -> None:
    before = EventLogCore(tmp_path)
    before.open_sessions(["s1"])
    await before.append(events_to_columns(_evs(4)))
    await before.close()
    after = EventLogCore(tmp_path)  # another driver's log; the session was not declared new here
    more = _evs(3)
    await after.append(events_to_columns(more[:2]))
    await after.append(events_to_columns(more[2:]))
    await after.close()
    got = _positions(tmp_path, "s1")
    assert sorted(got.values()) == list(range(1, 8)) and [got[e.event_id] for e in more] == [5, 6, 7]
    assert after.stats()["position_lookups"] == 1


def test_rows_without_positions_count_as_one_to_k(tmp_path: Path) -> None:
    """An old lake's session (rows written before positions) goes on after its k rows."""
    old = [e.model_copy(update={"schema_version": 2}) for e in _evs(3)]
    LakeWriter(tmp_path).write(events_to_columns(old))
    LakeWriter(tmp_path).write(events_to_columns(old[:1]))  # a row listed twice counts once
    assert last_in_lake(open_storage(tmp_path), "s1", "r1") == 3
    assert last_in_lake(open_storage(tmp_path), "s-none", "r1") == 0
    assert last_in_lake(open_storage(tmp_path), "s1", "r-none") == 0
