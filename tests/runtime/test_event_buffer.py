"""EventBuffer: batching by size and age, ordering, retries, flush/close, throughput."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

from troupe.runtime.clock import FakeClock
from troupe.runtime.eventlog.buffer import EventBuffer, EventShipError
from troupe.runtime.events import Event, make_event


def _ev(i: int) -> Event:
    return make_event("tool.call", run_id="r1", session_id="s1", seq=i)


class Recorder:
    """A ship callable that records batches and can fail on demand."""

    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.batches: list[dict[str, list[Any]]] = []
        self.fail = fail
        self.delay = delay
        self.calls = 0

    async def __call__(self, columns: dict[str, list[Any]]) -> int:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("log unreachable")
        self.batches.append(columns)
        return len(columns["seq"])

    @property
    def seqs(self) -> list[int]:
        return [s for b in self.batches for s in b["seq"]]


async def test_ships_full_batches_in_order() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=10, max_delay_s=10)
    buf.start()
    for i in range(35):
        buf.emit(_ev(i))
    await asyncio.sleep(0.05)
    assert [len(b["seq"]) for b in ship.batches] == [10, 10, 10]
    await buf.close()
    assert ship.seqs == list(range(35)) and buf.shipped == 35 and buf.pending == 0


async def test_ships_a_partial_batch_after_max_delay() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=1000, max_delay_s=0.02)
    buf.start()
    buf.emit(_ev(0))
    buf.emit(_ev(1))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if ship.batches:
            break
    assert ship.seqs == [0, 1]
    await buf.close()


async def test_flush_ships_everything_now() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=4, max_delay_s=60)  # not started: flush alone must work
    for i in range(10):
        buf.emit(_ev(i))
    await buf.flush()
    assert ship.seqs == list(range(10)) and buf.pending == 0
    assert [len(b["seq"]) for b in ship.batches] == [4, 4, 2]  # in batches of at most max_batch
    await buf.flush()
    assert ship.calls == 3  # nothing left: no call


async def test_failed_ship_is_retried_not_dropped() -> None:
    clock = FakeClock()
    ship = Recorder(fail=3)
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, attempts=5, clock=clock)
    for i in range(5):
        buf.emit(_ev(i))
    await buf.flush()
    assert ship.seqs == list(range(5)) and buf.failures == 3
    assert clock.slept == [0.05, 0.1, 0.2]  # exponential backoff


async def test_flush_raises_after_all_attempts_and_keeps_events() -> None:
    ship = Recorder(fail=4)
    buf = EventBuffer(ship, attempts=2, clock=FakeClock())
    for i in range(3):
        buf.emit(_ev(i))
    with pytest.raises(EventShipError) as info:
        await buf.flush()
    assert "log unreachable" in str(info.value) and info.value.fields["pending"] == 3
    assert buf.pending == 3 and ship.batches == []
    with pytest.raises(EventShipError):
        await buf.flush()
    await buf.flush()  # the log is back
    assert ship.seqs == [0, 1, 2] and buf.pending == 0


async def test_background_shipper_survives_failures() -> None:
    ship = Recorder(fail=2)
    buf = EventBuffer(ship, max_batch=3, max_delay_s=0.01, attempts=1, backoff_s=0.001, max_backoff_s=0.01)
    buf.start()
    for i in range(7):
        buf.emit(_ev(i))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if buf.pending == 0:
            break
    await buf.close()
    assert ship.seqs == list(range(7)) and buf.failures == 2


async def test_events_emitted_while_shipping_are_kept() -> None:
    ship = Recorder(delay=0.02)
    buf = EventBuffer(ship, max_batch=5, max_delay_s=0.005)
    buf.start()
    for i in range(50):
        buf.emit(_ev(i))
        if i % 7 == 0:
            await asyncio.sleep(0.005)
    await buf.close()
    assert ship.seqs == list(range(50))


async def test_overflow_drops_oldest_and_counts_them() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=2, max_pending=4)
    for i in range(7):
        buf.emit(_ev(i))
    assert buf.pending == 4 and buf.dropped == 3
    await buf.flush()
    assert ship.seqs == [3, 4, 5, 6]


async def test_emit_is_cheap() -> None:
    ship = Recorder()
    buf = EventBuffer(ship)
    buf.start()
    events = [_ev(i) for i in range(100_000)]
    t0 = time.perf_counter()
    for ev in events:
        buf.emit(ev)
    emit_s = time.perf_counter() - t0
    await buf.close()
    total_s = time.perf_counter() - t0
    assert len(ship.seqs) == 100_000
    assert emit_s < 0.5  # ~0.02 s on a quiet machine: a list append
    assert total_s < 5.0  # including column conversion of 100 batches


def test_to_columns_is_the_contract_with_ts_in_epoch_microseconds() -> None:
    import pyarrow as pa

    from troupe.runtime.eventlog.buffer import to_columns
    from troupe.runtime.events import ARROW_SCHEMA, events_to_columns

    events = [make_event("llm.response", run_id="r", session_id="s", seq=i, tokens_in=i, payload={"i": i}) for i in range(5)]
    events.append(make_event("tool.call", run_id="r", session_id="s", ts=datetime(2026, 1, 2, 3, 4, 5, 6)))  # naive
    wire, ref = to_columns(events), events_to_columns(events)
    assert {k: v for k, v in wire.items() if k != "ts"} == {k: v for k, v in ref.items() if k != "ts"}
    assert all(isinstance(t, int) for t in wire["ts"])
    assert pa.Table.from_pydict(wire, schema=ARROW_SCHEMA).equals(pa.Table.from_pydict(ref, schema=ARROW_SCHEMA))
    assert to_columns([]) == events_to_columns([])


# --- back-pressure: wait_for_room ----------------------------------------------------------
async def test_wait_for_room_returns_at_once_below_high_water() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=20)
    buf.start()
    for i in range(19):
        buf.emit(_ev(i))
    with pytest.raises(StopIteration):  # finished without suspending once
        buf.wait_for_room().send(None)
    await buf.close()


async def test_wait_for_room_waits_until_the_shipper_brought_pending_below_high_water() -> None:
    ship = Recorder(delay=0.02)  # a slow log
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=20)
    buf.start()
    for i in range(50):
        buf.emit(_ev(i))
    await asyncio.wait_for(buf.wait_for_room(), 10)
    assert buf.pending < 20 and buf.shipped >= 31 and ship.seqs == list(range(buf.shipped))
    await buf.close()
    assert ship.seqs == list(range(50))


async def test_wait_for_room_waits_through_failures_while_the_shipper_retries() -> None:
    ship = Recorder(fail=3)
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=10, attempts=1, backoff_s=0.001,
                      max_backoff_s=0.01)
    buf.start()
    for i in range(12):
        buf.emit(_ev(i))
    await asyncio.wait_for(buf.wait_for_room(), 10)
    assert buf.pending < 10 and buf.failures == 3
    await buf.close()


async def test_wait_for_room_without_a_shipper_ships_from_the_caller() -> None:
    ship = Recorder()
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=10)  # never started
    for i in range(30):
        buf.emit(_ev(i))
    await buf.wait_for_room()
    assert buf.pending == 5 and ship.seqs == list(range(25))  # just below the mark, oldest first


async def test_wait_for_room_without_a_shipper_raises_when_the_log_refuses() -> None:
    ship = Recorder(fail=10)
    buf = EventBuffer(ship, max_batch=5, high_water=5, attempts=2, clock=FakeClock())
    for i in range(6):
        buf.emit(_ev(i))
    with pytest.raises(EventShipError, match="log unreachable"):
        await buf.wait_for_room()
    assert buf.pending == 6


async def test_a_waiter_is_released_when_the_buffer_closes() -> None:
    ship = Recorder(delay=0.01)
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=10)
    buf.start()
    for i in range(40):
        buf.emit(_ev(i))
    waiter = asyncio.create_task(buf.wait_for_room())
    await buf.close()
    await asyncio.wait_for(waiter, 5)
    assert buf.pending == 0 and ship.seqs == list(range(40))


async def test_a_waiter_ships_itself_when_the_shipper_is_cancelled() -> None:
    ship = Recorder(delay=0.01)
    buf = EventBuffer(ship, max_batch=5, max_delay_s=60, high_water=10)
    buf.start()
    for i in range(40):
        buf.emit(_ev(i))
    waiter = asyncio.create_task(buf.wait_for_room())
    await asyncio.sleep(0)
    assert buf._task is not None
    buf._task.cancel()  # the loop is shutting down its tasks, say
    await asyncio.wait_for(waiter, 5)
    assert buf.pending < 10 and ship.seqs == list(range(buf.shipped))


def test_high_water_defaults_to_ten_batches_and_is_checked() -> None:
    ship = Recorder()
    assert EventBuffer(ship, max_batch=100).high_water == 1000
    assert EventBuffer(ship, max_batch=100, max_pending=300).high_water == 300
    for bad in (0, 301):
        with pytest.raises(ValueError, match="high_water must be between 1 and max_pending"):
            EventBuffer(ship, max_pending=300, high_water=bad)


async def test_a_flush_cancelled_mid_ship_never_ships_its_batch_twice() -> None:
    """A turn cancelled while its checkpoint flushes events (an agent terminated by its parent just
    as its turn ends) must not leave the batch that reached the log to be sent again."""
    recorder = Recorder(delay=0.05)

    async def ship(columns: dict[str, list[Any]]) -> int:  # a remote call: it lands whoever stops waiting
        return await asyncio.shield(asyncio.ensure_future(recorder(columns)))

    buf = EventBuffer(ship, max_batch=10, max_delay_s=60)
    for i in range(3):
        buf.emit(_ev(i))
    flushing = asyncio.create_task(buf.flush())
    await asyncio.sleep(0.01)  # the ship call is on its way to the log
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    buf.emit(_ev(3))
    await buf.flush()
    assert recorder.seqs == [0, 1, 2, 3]
