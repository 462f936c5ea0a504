"""The lake changes under the server's readers (compaction swaps a run's parts for one merged file),
and sessions die: a session's events are still read whole and once, and no stream waits forever."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from troupe.runtime.eventlog.lake import LakeWriter, compact_run
from troupe.runtime.events import Event, events_to_columns
from troupe.runtime.server import lakeview
from troupe.runtime.server import state as state_mod
from troupe.runtime.server import stream as stream_mod
from troupe.runtime.server.models import SessionInfo
from troupe.runtime.server.settings import ServerSettings
from troupe.runtime.server.state import ServerState
from troupe.runtime.server.stream import SessionStream, lake_frames

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _events(n: int, *, start: int = 0, session: str = "s1", run: str = "r1") -> list[Event]:
    return [Event(run_id=run, session_id=session, type="message.sent", agent="lead", seq=i,
                  ts=T0 + timedelta(milliseconds=i)) for i in range(start, start + n)]


def _lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    writer = LakeWriter(lake)
    for k in range(3):  # three parts of run r1, and another run's part
        writer.write(events_to_columns(_events(4, start=4 * k)))
    writer.write(events_to_columns(_events(2, session="s2", run="r2")))
    return lake


def test_a_compaction_between_listing_and_reading_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's race: the parts listed are merged and deleted before they are read."""
    lake = _lake(tmp_path)
    real = lakeview.list_parts
    listings: list[int] = []

    def racing(storage: Any, run_id: str | None) -> list[Any]:
        parts = real(storage, run_id)
        if not listings:
            compact_run(lake, "r1")  # what the event log does when a run ends, at the worst moment
        listings.append(len(parts))
        return parts

    monkeypatch.setattr(lakeview, "list_parts", racing)
    with pytest.raises(lakeview.LakeChangingError, match="kept changing"):  # the race, with a single try
        lakeview.session_events(str(lake), "s1", tries=1)
    for run_id in (None, "r1"):
        listings.clear()
        lake = _lake(tmp_path / str(run_id))
        got = lakeview.session_events(str(lake), "s1", run_id=run_id)
        assert [e.seq for e in got] == list(range(12)), run_id
        assert len(listings) == 2  # listed again once the first list's parts were gone


def test_rows_listed_twice_in_a_compaction_come_back_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    events = [_events(1)[0].model_copy(update={"type": "session.started"}), *_events(4, start=1)]
    LakeWriter(lake).write(events_to_columns(events))
    LakeWriter(lake).write(events_to_columns(events))  # the merged file beside the parts it merged
    assert [e.event_id for e in lakeview.session_events(str(lake), "s1")] == [e.event_id for e in events]
    assert lakeview.run_of(str(lake), "s1").events == 5  # type: ignore[union-attr]


class _Backend:
    def __init__(self, tail: AsyncIterator[Event], status: str) -> None:
        self._tail, self.status = tail, status

    def tail(self, session_id: Any) -> AsyncIterator[Event]:
        return self._tail

    async def call(self, session_id: Any, target: Any, method: str, kwargs: dict[str, Any]) -> Any:
        if method == "describe":
            return {"status": self.status}
        raise RuntimeError("the session's host is gone")


class _Session:
    def __init__(self, backend: _Backend) -> None:
        self.id, self.backend = "s1", backend

    async def close(self) -> None:
        return None


class _Troupe:
    def __init__(self, lake: Path) -> None:
        self.lake = lake


async def _frames_of(tmp_path: Path, tail: AsyncIterator[Event], status: str = "running") -> list[str]:
    server = ServerState(ServerSettings(local=True, lake=str(tmp_path)), troupe=_Troupe(tmp_path))  # type: ignore[arg-type]
    info = SessionInfo(id="s1", user="u", team="t", status="running", created_at=T0, run_id="r1")
    held = server._hold(_Session(_Backend(tail, status)), info)  # type: ignore[arg-type]
    return [f async for f in held.stream.frames(0, heartbeat_s=0.2)]


def _end(frames: list[str]) -> dict[str, Any]:
    assert frames[-1].startswith("event: end\n")
    return json.loads(frames[-1].split("data: ", 1)[1])


def test_a_stream_ends_with_an_error_when_its_tail_breaks(tmp_path: Path) -> None:
    async def tail() -> AsyncIterator[Event]:
        yield _events(1)[0]
        raise ConnectionError("the event log's actor died")

    frames = asyncio.run(asyncio.wait_for(_frames_of(tmp_path, tail()), 10))
    assert frames[0].startswith("id: 1\n")
    end = _end(frames)
    assert end["status"] == "failed" and "the event log's actor died" in end["error"]


def test_a_stream_ends_when_its_quiet_session_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_mod, "QUIET_S", 0.1)

    async def tail() -> AsyncIterator[Event]:
        yield _events(1)[0]
        await asyncio.sleep(3600)  # the session's process died: nothing more, ever
        yield _events(1)[0]

    frames = asyncio.run(asyncio.wait_for(_frames_of(tmp_path, tail(), status="cancelled"), 10))
    assert _end(frames)["status"] == "cancelled"


def test_a_lake_stream_gives_up_on_failing_reads_and_on_a_silent_session() -> None:
    async def broken() -> list[Event]:
        raise lakeview.LakeChangingError("the lake's files kept changing")

    async def live() -> str | None:
        return None

    async def nothing() -> list[Event]:
        return []

    async def run(load: Any, **kw: Any) -> list[str]:
        return [f async for f in lake_frames(load, live, 0, poll_s=0.01, **kw)]

    failed = asyncio.run(asyncio.wait_for(run(broken), 10))
    assert "kept changing" in _end(failed)["error"]
    stale = asyncio.run(asyncio.wait_for(run(nothing, stale_s=0.1), 10))
    assert "no event from the session" in _end(stale)["error"]


def test_events_go_out_in_position_order_holding_only_for_a_gap() -> None:
    """An event past a missing position waits for it (never longer than ``gap_s``); ids are positions."""
    now = [100.0]
    stream = SessionStream(gap_s=1.0, clock=lambda: now[0])
    a, b, c, d = (e.model_copy(update={"position": i + 1}) for i, e in enumerate(_events(4)))
    stream.add(a)
    stream.add(c)  # 2 is on its way
    assert stream.released == [a] and stream.gap_due_in() == pytest.approx(1.0)
    stream.add(b)
    assert stream.released == [a, b, c] and stream.ids == [1, 2, 3] and stream.gap_due_in() is None
    stream.add(b)  # the same event again (a re-read): ignored
    e5 = _events(1)[0].model_copy(update={"position": 5})
    stream.add(e5)
    now[0] += 1.0
    assert stream.gap_due_in() == 0 and stream.skip_gap() == 1 and stream.ids == [1, 2, 3, 5]
    stream.add(d)  # too late: its position was given up on
    assert (stream.skipped, stream.late, stream.ids) == (1, 1, [1, 2, 3, 5])
    frames = asyncio.run(_collect(stream, after=2))
    assert [f.split("\n", 1)[0] for f in frames[:-1]] == ["id: 3", "id: 5"]


async def _collect(stream: SessionStream, after: int) -> list[str]:
    stream.finish("completed")
    return [f async for f in stream.frames(after)]


def test_a_gap_is_filled_from_the_lake_by_the_pump() -> None:
    e1, e2, e3 = (e.model_copy(update={"position": i + 1}) for i, e in enumerate(_events(3)))
    end = Event(run_id="r1", session_id="s1", type="session.finished", status="completed", position=4)

    async def tail() -> AsyncIterator[Event]:
        yield e1
        yield e3  # 2 never comes live (a tail that overflowed): read from the lake after gap_s
        await asyncio.sleep(0.3)
        yield end

    async def fill() -> list[tuple[int, Event]]:
        return [(1, e1), (2, e2), (3, e3)]

    async def run() -> SessionStream:
        stream = SessionStream(gap_s=0.05)
        assert await stream_mod.pump(stream, tail(), fill=fill) == "completed"
        return stream

    stream = asyncio.run(asyncio.wait_for(run(), 10))
    assert stream.released == [e1, e2, e3, end] and stream.skipped == 0


def test_an_old_lakes_rows_without_positions_still_stream() -> None:
    """Rows written before positions (null) come first, numbered by (ts, seq, event_id); a resumed
    run's positioned rows follow them."""
    old = _events(3)
    new = [_events(1)[0].model_copy(update={"position": 4, "ts": T0})]

    async def load() -> list[Event]:
        return list(reversed(old)) + new

    async def done() -> str | None:
        return "completed"

    frames = asyncio.run(asyncio.wait_for(_from_lake(load, done, 1), 10))
    assert [f.split("\n", 1)[0] for f in frames[:-1]] == ["id: 2", "id: 3", "id: 4"]
    assert [json.loads(f.rsplit("data: ", 1)[1])["event_id"] for f in frames[:-1]] == \
        [old[1].event_id, old[2].event_id, new[0].event_id]


async def _from_lake(load: Any, finished: Any, after: int) -> list[str]:
    return [f async for f in lake_frames(load, finished, after, poll_s=0.01)]


def test_a_lake_stream_of_a_live_session_waits_at_a_gap_then_skips_it() -> None:
    got = [e.model_copy(update={"position": p}) for e, p in zip(_events(3), (1, 2, 4), strict=True)]
    polls = [0]

    async def load() -> list[Event]:
        polls[0] += 1
        return got

    async def live() -> str | None:
        return None if polls[0] < 30 else "completed"

    frames = asyncio.run(asyncio.wait_for(_ids_until(lake_frames(load, live, 0, poll_s=0.01, gap_s=0.1)), 10))
    assert frames[:2] == ["id: 1", "id: 2"] and "id: 4" in frames


async def _ids_until(frames: AsyncIterator[str]) -> list[str]:
    return [f.split("\n", 1)[0] async for f in frames]
