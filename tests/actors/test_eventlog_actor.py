"""The event-log actor on a real (local) Ray: producers in actors, durability (restarts with a
write-ahead log), tails, compaction."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from troupe.actors.eventlog_actor import WAL_DIR_ENV, RayShip, close_event_log, get_or_create_event_log, wal_dir_for
from troupe.runtime.eventlog.buffer import EventBuffer
from troupe.runtime.eventlog.core import InvalidEventBatchError, NotSubscribedError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import events_to_columns, make_event

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@dataclass
class Log:
    handle: Any
    name: str
    lake: Path

    def count(self, where: str = "true") -> int:
        return query(self.lake, f"SELECT count(*) AS n FROM events WHERE {where}")["n"][0].as_py()


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    name = f"eventlog-{uuid.uuid4().hex[:8]}"
    handle = get_or_create_event_log(tmp_path, name=name, flush_interval_s=0.2)
    yield Log(handle, name, tmp_path)
    try:
        await close_event_log(handle)
    except ray.exceptions.RayActorError:
        pass


@ray.remote(num_cpus=0)
class Producer:
    """Emits events through an EventBuffer, as a host process does."""

    async def produce(self, log_name: str, run_id: str, n: int) -> list[str]:
        buf = EventBuffer(RayShip(ray.get_actor(log_name, namespace="troupe")), max_batch=100)
        buf.start()
        ids = []
        for i in range(n):
            ev = make_event("tool.call", run_id=run_id, session_id=f"{run_id}-s", seq=i, tool="t")
            ids.append(ev.event_id)
            buf.emit(ev)
            if i % 250 == 0:
                await asyncio.sleep(0)
        buf.emit(make_event("llm.token", run_id=run_id, session_id=f"{run_id}-s", payload={"t": "hi"}))
        await buf.close()
        return ids


def _cols(n: int, *, session: str = "s1", type: str = "tool.call", run_id: str = "r1", **kw: Any) -> dict[str, list[Any]]:
    return events_to_columns(
        [make_event(type, run_id=run_id, session_id=session, seq=i, **kw) for i in range(n)]  # type: ignore[arg-type]
    )


async def test_events_from_producer_actors_all_reach_parquet(log: Log) -> None:
    producers = [Producer.remote() for _ in range(2)]
    try:
        ids = await asyncio.gather(*(p.produce.remote(log.name, f"run{k}", 1500) for k, p in enumerate(producers)))
    finally:
        for p in producers:
            ray.kill(p)
    await log.handle.flush.remote()
    got = query(log.lake, "SELECT event_id FROM events")["event_id"].to_pylist()
    assert len(got) == 3000 and set(got) == set(ids[0]) | set(ids[1])
    assert log.count("type = 'llm.token'") == 0  # ephemeral: never persisted
    stats = await log.handle.stats.remote()
    assert (stats["rows_accepted"], stats["rows_ephemeral"], stats["rows_written"]) == (3002, 2, 3000)
    assert sorted(p.name for p in (log.lake / "events").glob("date=*/run_id=*")) == ["run_id=run0", "run_id=run1"]


async def test_close_writes_what_is_buffered(tmp_path: Path) -> None:
    name = f"eventlog-{uuid.uuid4().hex[:8]}"
    handle = get_or_create_event_log(tmp_path, name=name, flush_interval_s=3600)
    assert await handle.append.remote(_cols(25)) == 25
    assert (await handle.stats.remote())["rows_buffered"] == 25
    wal_dir = Path((await handle.stats.remote())["wal_dir"])
    assert await close_event_log(handle) == 25
    assert query(tmp_path, "SELECT count(*) AS n FROM events")["n"][0].as_py() == 25
    with pytest.raises(ray.exceptions.RayActorError):  # a graceful end is not restarted
        await handle.stats.remote()
    assert not wal_dir.exists()
    # The name is free again: a new, empty log.
    again = get_or_create_event_log(tmp_path, name=name, flush_interval_s=3600)
    assert (await again.stats.remote())["rows_accepted"] == 0
    await close_event_log(again)


async def test_periodic_flush_without_asking(log: Log) -> None:
    await log.handle.append.remote(_cols(5))
    deadline = time.monotonic() + 10
    while log.count() < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert log.count() == 5


async def test_get_or_create_returns_the_same_actor(log: Log) -> None:
    again = get_or_create_event_log(log.lake, name=log.name)
    await again.append.remote(_cols(3))
    assert (await log.handle.stats.remote())["rows_accepted"] == 3


async def test_errors_cross_the_actor_boundary_as_troupe_errors(log: Log) -> None:
    with pytest.raises(NotSubscribedError):
        await log.handle.read.remote("nobody", 0, 0.0)
    with pytest.raises(InvalidEventBatchError):
        await log.handle.append.remote({"type": ["tool.call"]})
    assert (await log.handle.stats.remote())["rows_accepted"] == 0


async def test_tail_long_poll_through_the_actor(log: Log) -> None:
    cursor = await log.handle.subscribe.remote("s1")
    t0 = time.monotonic()
    assert await log.handle.read.remote("s1", cursor, 0.3) == ([], cursor)
    assert time.monotonic() - t0 >= 0.25

    pending = log.handle.read.remote("s1", cursor, 20.0)
    await asyncio.sleep(0.2)
    t1 = time.monotonic()
    await log.handle.append.remote(_cols(2, session="other"))  # another session: no wake-up
    await log.handle.append.remote(_cols(3, type="llm.token", payload={"t": "x"}))
    events, nxt = await pending
    assert time.monotonic() - t1 < 5.0
    assert [e["type"] for e in events] == ["llm.token"] * 3 and nxt == 3
    await log.handle.unsubscribe.remote("s1")
    assert (await log.handle.stats.remote())["subscribed_sessions"] == 0


async def test_finish_run_compacts_and_keeps_rows(log: Log) -> None:
    for _ in range(4):
        await log.handle.append.remote(_cols(10, run_id="rx"))
        await log.handle.flush.remote()
    assert len(list(log.lake.rglob("*.parquet"))) == 4
    result = await log.handle.finish_run.remote("rx")
    assert result == {"files_before": 4, "files_after": 1, "rows": 40}
    assert len(list(log.lake.rglob("*.parquet"))) == 1 and log.count("run_id = 'rx'") == 40


async def test_secret_in_payload_lands_redacted(log: Log) -> None:
    await log.handle.append.remote(_cols(1, type="llm.request", payload={"api_key": "sk-test0123456789abcdef"}))
    await log.handle.flush.remote()
    assert query(log.lake, "SELECT payload FROM events")["payload"].to_pylist() == ['{"api_key": "[redacted]"}']


# --- durability: the log's process dies, Ray restarts it, the write-ahead log is recovered ------
async def _restarted(handle: Any, old_pid: int, timeout: float = 60.0) -> int:
    """The pid of the log's new process, once Ray has restarted it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int((await handle.identity.remote())["pid"])
        except ray.exceptions.RayActorError:  # between death and restart, depending on timing
            pid = old_pid
        if pid != old_pid:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"the event log was not restarted within {timeout} s")


@pytest.mark.parametrize("kill", ["ray.kill", "SIGKILL"])
async def test_acknowledged_and_in_flight_events_survive_the_log_dying(tmp_path: Path, kill: str) -> None:
    name = f"eventlog-{uuid.uuid4().hex[:8]}"
    handle = get_or_create_event_log(tmp_path, name=name, flush_interval_s=3600)  # nothing flushes by age
    try:
        acked = [_cols(20, run_id=f"r{k % 2}", session=f"s{k}") for k in range(5)]
        for cols in acked:
            assert await handle.append.remote(cols) == 20
        before = await handle.stats.remote()
        assert (before["rows_buffered"], before["rows_written"], before["wal_segments"]) == (100, 0, 1)
        wal_dir = Path(before["wal_dir"])
        assert wal_dir.is_dir()
        if not os.environ.get("TROUPE_WAL_DIR"):
            assert wal_dir.parent == Path(tempfile.gettempdir()) / "troupe-wal"
        identity = await handle.identity.remote()
        assert (identity["name"], identity["namespace"]) == (name, "troupe")
        pid = int(identity["pid"])
        # More batches in flight when the process dies: Ray sends them again to the new instance.
        in_flight = [_cols(10, run_id="r2", session=f"f{k}") for k in range(5)]
        refs = [handle.append.remote(cols) for cols in in_flight]
        if kill == "ray.kill":
            ray.kill(handle, no_restart=False)
        else:
            os.kill(pid, signal.SIGKILL)
        assert await _restarted(handle, pid) != pid
        assert await asyncio.gather(*refs) == [10] * 5
        after = await handle.stats.remote()
        assert after["wal_rows_recovered"] >= 100  # the acknowledged rows, and in-flight ones it had logged
        assert after["rows_written"] == after["wal_rows_recovered"]  # written as the new instance started
        # A producer that never heard back for a batch sends it again.
        assert await handle.append.remote(acked[-1]) == 20
        await handle.flush.remote()
        ids = query(tmp_path, "SELECT event_id FROM events")["event_id"].to_pylist()
        expected = {i for cols in acked + in_flight for i in cols["event_id"]}
        assert len(ids) == len(expected) == 150 and set(ids) == expected  # every event, exactly once
        assert (await handle.stats.remote())["rows_duplicate"] >= 20
    finally:
        await close_event_log(handle)
    assert not wal_dir.exists()


async def test_close_then_kill_as_the_backend_shuts_down_leaves_no_segment(tmp_path: Path) -> None:
    handle = get_or_create_event_log(tmp_path, name=f"eventlog-{uuid.uuid4().hex[:8]}", flush_interval_s=3600)
    await handle.append.remote(_cols(7))
    wal_dir = Path((await handle.stats.remote())["wal_dir"])
    assert len(list(wal_dir.glob("segment-*.arrow"))) == 1
    assert await handle.close.remote() == 7  # RayBackend.shutdown: close, then kill without restart
    ray.kill(handle, no_restart=True)
    assert not wal_dir.exists()
    assert query(tmp_path, "SELECT count(*) AS n FROM events")["n"][0].as_py() == 7


def test_wal_dir_is_stable_per_lake_under_the_configured_parent(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WAL_DIR_ENV, raising=False)
    default = wal_dir_for("/lake")
    assert default.parent == Path(tempfile.gettempdir()) / "troupe-wal"
    monkeypatch.setenv(WAL_DIR_ENV, str(tmp_path))
    here = wal_dir_for("/lake")
    assert here == tmp_path / default.name == wal_dir_for("/lake")
    assert here != wal_dir_for("/other")


async def test_the_next_log_of_a_lake_writes_what_logs_that_died_with_their_cluster_left(tmp_path: Path) -> None:
    from tests.runtime.test_eventlog import _crash, _evs
    from troupe.actors.eventlog_actor import _core_with_wal
    from troupe.runtime.eventlog.buffer import to_columns

    lake, wal = str(tmp_path / "lake"), tmp_path / "wal" / "abc"
    live = _core_with_wal(lake, wal, {})  # slot 0: a log that stays alive throughout
    dead = [_core_with_wal(lake, wal, {}) for _ in range(2)]  # slots 1 and 2: two more clusters' logs
    for log, n in zip(dead, (5, 3), strict=True):  # acknowledge events, then die with their cluster
        await log.append(to_columns(_evs(n, run_id=f"r{n}")))
    for log in dead:
        _crash(log)

    def count() -> int:
        return int(query(tmp_path / "lake", "SELECT count(*) AS n FROM events")["n"][0].as_py())

    assert count() == 0
    after = _core_with_wal(lake, wal, {})  # a new cluster's log: takes slot 1, adopts slot 2
    assert count() == 8
    await after.close()
    await live.close()
    assert count() == 8 and not list((tmp_path / "wal").iterdir())


async def test_a_log_whose_wal_dir_is_held_by_a_live_one_takes_the_next_slot(tmp_path: Path) -> None:
    from troupe.actors.eventlog_actor import _core_with_wal

    primary = tmp_path / "wal" / "abc"
    first = _core_with_wal(str(tmp_path / "lake"), primary, {})
    second = _core_with_wal(str(tmp_path / "lake"), primary, {})  # another cluster's log, same lake and name
    assert (first.stats()["wal_dir"], second.stats()["wal_dir"]) == (str(primary), str(tmp_path / "wal" / "abc-1"))
    await second.close()
    await first.close()
    assert not (tmp_path / "wal" / "abc").exists() and not (tmp_path / "wal" / "abc-1").exists()
