"""EventLogCore: durability of accepted events (write-ahead log), ephemeral events, flush policy,
back-pressure, live tails."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from troupe.runtime.clock import FakeClock
from troupe.runtime.eventlog.core import EventLogClosedError, EventLogCore, InvalidEventBatchError, NotSubscribedError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event, events_to_columns, make_event
from troupe.runtime.storage.location import Storage, open_storage


def _evs(n: int, *, run_id: str = "r1", session: str = "s1", type: str = "tool.call") -> list[Event]:
    return [make_event(type, run_id=run_id, session_id=session, seq=i, payload={"i": i}) for i in range(n)]  # type: ignore[arg-type]


def _count(lake: Path, where: str = "true") -> int:
    return query(lake, f"SELECT count(*) AS n FROM events WHERE {where}")["n"][0].as_py()


def _files(lake: Path) -> list[Path]:
    return sorted((lake / "events").rglob("*.parquet"))


async def test_accepted_events_are_buffered_then_written_on_flush(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    assert await log.append(events_to_columns(_evs(10))) == 10
    assert _count(tmp_path) == 0 and log.stats()["rows_buffered"] == 10
    assert await log.flush() == 10
    assert _count(tmp_path) == 10
    st = log.stats()
    assert (st["rows_written"], st["files_written"], st["flushes"], st["rows_buffered"]) == (10, 1, 1, 0)
    assert await log.flush() == 0  # nothing buffered: no empty file
    assert len(_files(tmp_path)) == 1


async def test_close_writes_everything_and_refuses_more(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    sent = _evs(7) + _evs(5, run_id="r2")
    await log.append(events_to_columns(sent[:7]))
    await log.append(events_to_columns(sent[7:]))
    assert await log.close() == 12
    ids = set(query(tmp_path, "SELECT event_id FROM events")["event_id"].to_pylist())
    assert ids == {e.event_id for e in sent}
    with pytest.raises(EventLogClosedError):
        await log.append(events_to_columns(_evs(1)))


async def test_ephemeral_events_reach_subscribers_but_not_parquet(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    cursor = log.subscribe("s1")
    mixed = [*_evs(2), *_evs(3, type="llm.token"), *_evs(1, type="llm.response")]
    assert await log.append(events_to_columns(mixed)) == 6
    events, cursor = await log.read("s1", cursor, timeout=0)
    assert [e["type"] for e in events] == [e.type for e in mixed]
    assert events[0]["event_id"] == mixed[0].event_id and events[0]["payload"] == '{"i": 0}'
    await log.close()
    assert query(tmp_path, "SELECT type FROM events ORDER BY type")["type"].to_pylist() == [
        "llm.response",
        "tool.call",
        "tool.call",
    ]
    st = log.stats()
    assert (st["rows_accepted"], st["rows_ephemeral"], st["rows_written"]) == (6, 3, 3)
    # A batch of only ephemeral events writes nothing at all.
    log2 = EventLogCore(tmp_path / "b")
    await log2.append(events_to_columns(_evs(4, type="llm.token")))
    await log2.close()
    assert not (tmp_path / "b").exists()


async def test_flushes_when_buffer_reaches_flush_rows(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path, flush_rows=100)
    await log.append(events_to_columns(_evs(60)))
    assert log.stats()["flushes"] == 0
    await log.append(events_to_columns(_evs(60)))
    st = log.stats()
    assert (st["flushes"], st["rows_written"], st["rows_buffered"]) == (1, 120, 0)
    assert _count(tmp_path) == 120


async def test_maybe_flush_flushes_by_age_with_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EventLogCore(tmp_path, flush_interval_s=0.5, clock=clock)
    assert await log.maybe_flush() == 0
    await log.append(events_to_columns(_evs(3)))
    clock.advance(0.3)
    await log.append(events_to_columns(_evs(3)))  # does not reset the age of the oldest row
    assert await log.maybe_flush() == 0
    clock.advance(0.25)
    assert await log.maybe_flush() == 6
    assert _count(tmp_path) == 6


async def test_failed_write_keeps_rows_and_a_later_flush_writes_them(tmp_path: Path) -> None:
    blocker = tmp_path / "lake"
    blocker.write_text("not a directory")  # the writer cannot create <lake>/events
    log = EventLogCore(blocker, flush_rows=5)
    assert await log.append(events_to_columns(_evs(5))) == 5  # accepted even though its flush failed
    with pytest.raises(OSError):
        await log.flush()
    st = log.stats()
    assert st["rows_buffered"] == 5 and st["write_errors"] == 2 and st["rows_written"] == 0
    blocker.unlink()
    assert await log.close() == 5
    assert _count(blocker) == 5


async def test_bad_batches_are_refused_up_front(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    cols = events_to_columns(_evs(2))
    with pytest.raises(InvalidEventBatchError):
        await log.append({k: v for k, v in cols.items() if k != "ts"})
    with pytest.raises(InvalidEventBatchError):
        await log.append({**cols, "seq": ["x", "y"]})
    with pytest.raises(InvalidEventBatchError):
        await log.append({**cols, "run_id": [None, "r"]})
    with pytest.raises(InvalidEventBatchError):
        await log.append({**cols, "seq": [1]})
    assert await log.append(events_to_columns([])) == 0
    assert await log.append(cols) == 2
    assert await log.close() == 2


async def test_finish_run_flushes_and_compacts_that_run(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    for _ in range(4):
        await log.append(events_to_columns(_evs(10)))
        await log.append(events_to_columns(_evs(2, run_id="other")))
        await log.flush()
    assert len(_files(tmp_path)) == 8
    result = await log.finish_run("r1")
    assert (result.files_before, result.files_after, result.rows) == (4, 1, 40)
    assert len(_files(tmp_path)) == 5
    assert _count(tmp_path, "run_id = 'r1'") == 40 and _count(tmp_path) == 48
    assert log.stats()["compactions"] == 1


async def test_secret_in_payload_lands_redacted(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    ev = make_event("llm.request", run_id="r1", session_id="s1", payload={"api_key": "sk-live0123456789abcdef"})
    await log.append(events_to_columns([ev]))
    await log.close()
    (path,) = _files(tmp_path)
    assert pq.read_table(path)["payload"].to_pylist() == ['{"api_key": "[redacted]"}']
    assert "sk-live" not in path.read_bytes().decode("latin-1")


# --- live tail -----------------------------------------------------------------------------
async def test_read_returns_early_when_data_arrives(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    cursor = log.subscribe("s1")
    assert cursor == 0

    async def later() -> None:
        await asyncio.sleep(0.05)
        await log.append(events_to_columns(_evs(2, session="other") + _evs(3, session="s1")))

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    events, nxt = await log.read("s1", cursor, timeout=5.0)
    assert time.monotonic() - t0 < 2.0
    await task
    assert [e["seq"] for e in events] == [0, 1, 2] and nxt == 3
    assert all(e["session_id"] == "s1" for e in events)
    assert set(events[0]) == set(Event.model_fields)


async def test_read_times_out_empty(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    cursor = log.subscribe("s1")
    await log.append(events_to_columns(_evs(2, session="s2")))  # another session's events don't wake it
    t0 = time.monotonic()
    assert await log.read("s1", cursor, timeout=0.1) == ([], 0)
    assert 0.09 <= time.monotonic() - t0 < 1.0


async def test_tail_cursor_semantics_and_bound(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path, tail_max=5)
    await log.append(events_to_columns(_evs(3)))  # before subscribing: not in the tail
    c = log.subscribe("s1")
    await log.append(events_to_columns(_evs(4)))
    events, c2 = await log.read("s1", c, timeout=0)
    assert [e["seq"] for e in events] == [0, 1, 2, 3] and c2 == 4
    events, c3 = await log.read("s1", 2, timeout=0)  # re-read from an older cursor
    assert [e["seq"] for e in events] == [2, 3] and c3 == 4
    await log.append(events_to_columns(_evs(4)))  # 8 since subscribe, only the last 5 kept
    events, c4 = await log.read("s1", c2, timeout=0)
    assert [e["seq"] for e in events] == [0, 1, 2, 3] and c4 == 8
    events, c5 = await log.read("s1", 0, timeout=0)  # overflowed past cursor 0: resume at the oldest
    assert [e["seq"] for e in events] == [3, 0, 1, 2, 3] and c5 == 8
    assert await log.read("s1", 99, timeout=0) == ([], 8)  # stale cursor from an older log


async def test_tails_only_for_subscribed_sessions(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EventLogCore(tmp_path, clock=clock, tail_idle_s=60)
    with pytest.raises(NotSubscribedError):
        await log.read("s1", 0, timeout=0)
    log.subscribe("s1")
    log.subscribe("s1")  # a second viewer
    log.unsubscribe("s1")
    await log.append(events_to_columns(_evs(1)))
    assert len((await log.read("s1", 0, timeout=0))[0]) == 1
    log.unsubscribe("s1")
    assert log.stats()["subscribed_sessions"] == 0
    with pytest.raises(NotSubscribedError):
        await log.read("s1", 0, timeout=0)
    # A viewer that vanished without unsubscribing: its tail is dropped after tail_idle_s.
    log.subscribe("s2")
    clock.advance(30)
    await log.maybe_flush()
    assert log.stats()["subscribed_sessions"] == 1
    clock.advance(31)
    await log.maybe_flush()
    assert log.stats()["subscribed_sessions"] == 0


async def test_many_concurrent_readers_all_wake(tmp_path: Path) -> None:
    log = EventLogCore(tmp_path)
    for s in ("a", "b"):
        log.subscribe(s)
    readers = [asyncio.create_task(log.read(s, 0, timeout=5)) for s in ("a", "b") for _ in range(20)]
    await asyncio.sleep(0.01)
    await log.append(events_to_columns(_evs(1, session="a") + _evs(1, session="b")))
    results = await asyncio.wait_for(asyncio.gather(*readers), 2)
    assert all(len(events) == 1 and nxt == 1 for events, nxt in results)


async def test_accepts_the_producers_wire_form_with_integer_ts(tmp_path: Path) -> None:
    from troupe.runtime.eventlog.buffer import to_columns

    log = EventLogCore(tmp_path)
    cursor = log.subscribe("s1")
    evs = _evs(3)
    await log.append(to_columns(evs))
    events, _ = await log.read("s1", cursor, timeout=0)
    assert [e["ts"] for e in events] == [e.ts for e in evs]  # tail readers get datetimes
    await log.close()
    got = query(tmp_path, "SELECT event_id, ts FROM events ORDER BY seq").to_pylist()
    assert [(r["event_id"], r["ts"]) for r in got] == [(e.event_id, e.ts) for e in evs]


async def test_flush_waits_for_a_periodic_write_already_under_way(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EventLogCore(tmp_path, flush_interval_s=0.5, clock=clock)
    real_write = log._write

    def slow_write(batches: list) -> tuple[int, int]:  # type: ignore[type-arg]
        time.sleep(0.2)
        return real_write(batches)

    log._write = slow_write  # type: ignore[method-assign]
    await log.append(events_to_columns(_evs(4)))
    clock.advance(1)
    periodic = asyncio.create_task(log.maybe_flush())
    await asyncio.sleep(0.02)  # the periodic write has started in its thread
    await log.append(events_to_columns(_evs(3)))
    assert await log.flush() == 3
    assert _count(tmp_path) == 7  # including the 4 rows of the periodic write
    assert await periodic == 4


# --- write-ahead log: acknowledged events survive the log's death --------------------------
def _ids_in(lake: Path) -> list[str]:
    return query(lake, "SELECT event_id FROM events")["event_id"].to_pylist()


def _segments(wal: Path) -> list[str]:
    return sorted(p.name for p in wal.glob("segment-*.arrow"))


def _crash(log: EventLogCore) -> None:
    """What the death of the log's process leaves: no close, no flush, files as they are, and the
    write-ahead log's lock released (by the kernel, for a real process)."""
    assert log._wal is not None and log._wal._lock is not None
    log._wal._lock.close()


async def test_acknowledged_events_outlive_a_dead_log_and_are_written_once(tmp_path: Path) -> None:
    from troupe.runtime.eventlog.buffer import to_columns

    lake, wal = tmp_path / "lake", tmp_path / "wal"
    log = EventLogCore(lake, wal_dir=wal, flush_rows=25)
    batches = [_evs(10, run_id=f"r{k % 2}") for k in range(5)]
    for batch in batches:
        assert await log.append(to_columns(batch)) == 10
    st = log.stats()
    assert (st["rows_written"], st["rows_buffered"]) == (30, 20) and st["wal_segments"] == 1
    _crash(log)
    assert _count(lake) == 30 and len(_segments(wal)) == 1

    again = EventLogCore(lake, wal_dir=wal)
    st = again.stats()
    assert (st["wal_rows_recovered"], st["rows_written"], st["rows_buffered"]) == (20, 20, 0)
    assert _count(lake) == 50 and _segments(wal) == []  # written at once, then the segment deleted
    # The producer never heard back for its last batch and sends it again (Ray re-sends in-flight calls).
    assert await again.append(to_columns(batches[-1])) == 10
    assert await again.close() == 0
    ids = _ids_in(lake)
    assert len(ids) == 50 and set(ids) == {e.event_id for b in batches for e in b}
    assert again.stats()["rows_duplicate"] == 10
    assert not wal.exists()  # closed cleanly: no segment, no directory left


async def test_rows_the_lake_already_has_are_not_written_again_after_a_crash(tmp_path: Path) -> None:
    """The log died after a Parquet write and before deleting the segments that held its rows."""
    lake, wal = tmp_path / "lake", tmp_path / "wal"
    log = EventLogCore(lake, wal_dir=wal)
    written, buffered = _evs(6), _evs(4, run_id="r2")
    await log.append(events_to_columns(written))
    assert log._wal is not None
    log._wal.delete = lambda segments: None  # type: ignore[method-assign]  # died before deleting
    await log.flush()
    await log.append(events_to_columns(buffered))
    _crash(log)
    assert len(_segments(wal)) == 2

    again = EventLogCore(lake, wal_dir=wal)
    st = again.stats()
    assert (st["wal_rows_recovered"], st["rows_duplicate"], st["rows_written"]) == (10, 6, 4)
    await again.close()
    ids = _ids_in(lake)
    assert sorted(ids) == sorted(e.event_id for e in written + buffered)
    assert not wal.exists()


async def test_segments_stay_until_their_rows_are_in_parquet(tmp_path: Path) -> None:
    blocker, wal = tmp_path / "lake", tmp_path / "wal"
    blocker.write_text("not a directory")  # every write to the lake fails
    log = EventLogCore(blocker, wal_dir=wal)
    sent = _evs(5)
    await log.append(events_to_columns(sent))
    with pytest.raises(OSError):
        await log.close()
    assert len(_segments(wal)) == 1  # the failed write kept the segment
    _crash(log)

    again = EventLogCore(blocker, wal_dir=wal)  # recovers, and its write fails too: rows stay buffered
    st = again.stats()
    assert (st["wal_rows_recovered"], st["rows_buffered"], st["write_errors"]) == (5, 5, 1)
    assert len(_segments(wal)) == 1
    blocker.unlink()
    assert await again.close() == 5
    assert sorted(_ids_in(blocker)) == sorted(e.event_id for e in sent) and not wal.exists()


async def test_close_sync_and_ephemeral_batches_leave_no_segment(tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    log = EventLogCore(tmp_path / "lake", wal_dir=wal)
    await log.append(events_to_columns(_evs(3, type="llm.token")))
    assert log.stats()["wal_segments"] == 0  # ephemeral rows are never persisted, nor logged ahead
    await log.append(events_to_columns(_evs(3)))
    assert log.stats()["wal_segments"] == 1 and log.stats()["wal_bytes"] > 0
    assert log.close_sync() == 3
    assert _count(tmp_path / "lake") == 3 and not wal.exists()


async def test_a_live_wal_directory_is_refused_to_a_second_log(tmp_path: Path) -> None:
    from troupe.runtime.storage.wal import WalBusyError

    log = EventLogCore(tmp_path / "lake", wal_dir=tmp_path / "wal")
    with pytest.raises(WalBusyError):
        EventLogCore(tmp_path / "lake", wal_dir=tmp_path / "wal")
    await log.close()


# --- back-pressure -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SlowStorage(Storage):
    """A lake on a slow disk: every Parquet file takes ``delay`` seconds."""

    delay: float = 0.05

    def write_parquet(self, rel_dir: str, table: pa.Table, **options: Any) -> str:
        time.sleep(self.delay)
        return super().write_parquet(rel_dir, table, **options)


def _slow(path: Path, delay: float) -> SlowStorage:
    base = open_storage(path)
    return SlowStorage(base.fs, base.base, base.location, delay=delay)


async def test_appends_wait_for_a_slow_lake_instead_of_buffering_without_bound(tmp_path: Path) -> None:
    limit, batch = 50, 10
    log = EventLogCore(_slow(tmp_path / "lake", 0.05), wal_dir=tmp_path / "wal", flush_rows=20,
                       max_buffered_rows=limit)
    assert log._wal is not None
    unwritten_after_append: list[int] = []
    wal_append = log._wal.append

    def spy(table: pa.Table) -> None:  # every persistent append passes here, just before it is buffered
        unwritten_after_append.append(log.stats()["rows_buffered"] + log.stats()["rows_in_flight"] + table.num_rows)
        wal_append(table)

    log._wal.append = spy  # type: ignore[method-assign]
    sent: list[Event] = []

    async def producer(k: int) -> None:
        for j in range(8):
            events = _evs(batch, session=f"s{k}-{j}")
            sent.extend(events)
            assert await log.append(events_to_columns(events)) == batch

    await asyncio.gather(*(producer(k) for k in range(10)))
    assert max(unwritten_after_append) <= limit + batch  # never more than the limit plus one batch
    assert max(unwritten_after_append) >= limit  # ... and the limit was reached: producers did wait
    assert log.stats()["appends_waited"] > 0
    await log.close()
    ids = _ids_in(tmp_path / "lake")
    assert len(ids) == 800 and set(ids) == {e.event_id for e in sent}
    assert not (tmp_path / "wal").exists()


async def test_a_waiting_append_writes_when_nothing_else_will(tmp_path: Path) -> None:
    """Below ``flush_rows`` and with no periodic flush, the appends that hit the limit write."""
    log = EventLogCore(tmp_path, flush_rows=10_000, flush_interval_s=3600, max_buffered_rows=30)
    for _ in range(10):
        await log.append(events_to_columns(_evs(10)))
        assert log.stats()["rows_buffered"] <= 30
    st = log.stats()
    assert st["appends_waited"] == 3 and st["rows_written"] == 90 and st["files_written"] == 3
    await log.close()
    assert _count(tmp_path) == 100


async def test_close_while_appends_wait_refuses_them_and_writes_the_rest(tmp_path: Path) -> None:
    log = EventLogCore(_slow(tmp_path, 0.3), flush_rows=10, max_buffered_rows=10)
    first = asyncio.create_task(log.append(events_to_columns(_evs(10))))  # starts a slow write
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(log.append(events_to_columns(_evs(5))))
    await asyncio.sleep(0.05)
    assert not waiting.done() and log.stats()["appends_waited"] == 1
    await log.close()
    with pytest.raises(EventLogClosedError, match="closed while this batch waited"):
        await waiting
    assert await first == 10
    assert _count(tmp_path) == 10


def test_max_buffered_rows_must_be_positive(tmp_path: Path) -> None:
    from troupe.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="max_buffered_rows must be at least 1"):
        EventLogCore(tmp_path, max_buffered_rows=0)
