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


def test_events_wait_settle_s_by_their_own_clock() -> None:
    """An event that took longer than ``settle_s`` to arrive is released at once; a fresh one waits."""
    now = [100.0]
    wall = [T0 + timedelta(seconds=1)]
    stream = SessionStream(settle_s=0.1, clock=lambda: now[0], wall=lambda: wall[0])
    old, fresh = _events(2)[0], Event(run_id="r1", session_id="s1", type="message.sent", ts=wall[0])
    stream.add(fresh)
    stream.add(old)  # 1 s old on arrival
    assert stream.release() == 1 and stream.released == [old]
    assert stream.due_in() == pytest.approx(0.1)
    now[0] += 0.1
    assert stream.release() == 1 and stream.released == [old, fresh] and stream.late == 0
