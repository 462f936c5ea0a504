"""SSE ids are the event log's stream positions: a client reconnecting with ``Last-Event-ID`` to
another replica (a second app over the same lake), live or after the session ended, or to the same
server once it reads the session from the lake, gets exactly the events after it, even when one
event reaches the server late (delivery delayed between the event log and the server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer, serve_in_thread, write_teams
from troupe.runtime.events import Event
from troupe.runtime.server.app import build_app
from troupe.runtime.server.settings import ServerSettings
from troupe.runtime.server.state import LocalDirectory, ServerState
from troupe.runtime.session.local_backend import LocalBackend

DELAY_S = 0.4
"""How late the delayed event reaches the server (the old 0.1 s settle window gave it a wrong id)."""


def _delaying(real: Any) -> Any:
    """A tail that hands the session's 2nd lasting event to the server after the 3rd, ``DELAY_S`` late."""

    async def tail(self: LocalBackend, session_id: Any) -> AsyncIterator[Event]:
        lasting, held = 0, None
        async for event in real(self, session_id):
            if not event.ephemeral:
                lasting += 1
            if lasting == 2 and held is None and not event.ephemeral:
                held = event
                continue
            yield event
            if held is not None and lasting == 3:
                await asyncio.sleep(DELAY_S)
                yield held
                lasting += 1
    return tail


@pytest.fixture
def replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, LiveServer, ServerState]]:
    """Two apps over one lake and one session directory; the first runs the sessions (its tail delayed)."""
    monkeypatch.setattr(LocalBackend, "tail", _delaying(LocalBackend.tail))
    teams = tmp_path / "teams"
    write_teams(teams, tmp_path / "approved.txt")
    lake = tmp_path / "lake"
    settings = ServerSettings(local=True, lake=str(lake), teams=[str(teams)])
    directory = LocalDirectory()
    a_state = ServerState(settings, directory=directory)
    a = serve_in_thread(build_app(settings, state=a_state))
    b = serve_in_thread(build_app(settings, directory=directory))
    with httpx.Client(base_url=a[2] + "/api/v1", timeout=30) as ca, httpx.Client(base_url=b[2] + "/api/v1",
                                                                                 timeout=30) as cb:
        yield LiveServer(url=a[2], lake=lake, client=ca), LiveServer(url=b[2], lake=lake, client=cb), a_state
    for uv, thread, _ in (b, a):
        uv.should_exit = True
        thread.join(30)


def _ids(frames: list[dict[str, Any]]) -> list[int]:
    return [int(f["id"]) for f in frames if f.get("event") != "end"]


def _check_positions(frames: list[dict[str, Any]]) -> None:
    """Every frame's id is the position the event log recorded with the event."""
    assert all(int(f["id"]) == f["data"]["position"] for f in frames if f.get("event") != "end")


def test_reconnect_across_replicas_and_the_lake_with_a_late_event(
        replicas: tuple[LiveServer, LiveServer, ServerState]) -> None:
    a, b, a_state = replicas
    sid = a.client.post("/sessions", json={"team": "board", "input": "go"}).json()["id"]
    first = a.sse(f"/sessions/{sid}/events", stop=lambda f: f.get("event") == "approval.requested")
    _check_positions(first)
    assert _ids(first) == list(range(1, len(first) + 1))  # the late event was waited for, not renumbered
    a.client.get(f"/sessions/{sid}/timeline")  # the first replica's events into the lake
    # another replica, live session, read from the lake: resumes after the 3rd frame
    mid = b.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": first[2]["id"]},
                stop=lambda f: f.get("event") == "approval.requested")
    _check_positions(mid)
    assert [f["data"]["event_id"] for f in mid] == [f["data"]["event_id"] for f in first[3:]]
    [pending] = a.client.get("/approvals", params={"session": sid}).json()
    assert a.client.post(f"/approvals/{pending['id']}/approve", json={}).status_code == 200
    rest_b = b.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": first[-1]["id"]})
    rest_a = a.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": first[-1]["id"]})  # its held stream
    assert rest_b[-1]["event"] == rest_a[-1]["event"] == "end"
    timeline = a.client.get(f"/sessions/{sid}/timeline").json()
    assert [e["position"] for e in timeline] == list(range(1, len(timeline) + 1))
    whole = [f["data"]["event_id"] for f in first + rest_b[:-1]]
    assert whole == [e["event_id"] for e in timeline]  # nothing lost, nothing repeated
    assert [f["data"]["event_id"] for f in rest_a[:-1]] == whole[len(first):]
    _check_positions(rest_a + rest_b)
    held = a_state.held[sid]
    assert (held.stream.late, held.stream.skipped) == (0, 0)
    del a_state.held[sid]  # the first server forgets it: from now on it reads the lake too
    again = a.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": "2"})
    assert [f["data"]["event_id"] for f in again[:-1]] == whole[2:]
