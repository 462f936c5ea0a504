"""Two server processes over one lake and one directory (two apps on one event loop, local placement): reads
and writes sent to the replica that does not hold the session run on the one that does, with its answers
(refusals included); once the holder stops, a write is refused at once with the resume advice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import write_teams
from troupe.runtime.server.app import build_app
from troupe.runtime.server.relay import HOLDER_HEADER, REPLICA_HEADER
from troupe.runtime.server.settings import ServerSettings
from troupe.runtime.server.state import LocalDirectory, ServerState

Pair = tuple[httpx.AsyncClient, httpx.AsyncClient, ServerState, ServerState]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    teams = tmp_path / "teams"
    write_teams(teams, tmp_path / "approved.txt")
    settings = ServerSettings(local=True, lake=str(tmp_path / "lake"), teams=[str(teams)])
    directory = LocalDirectory()
    states = [ServerState(settings, directory=directory) for _ in range(2)]
    clients = []
    for state in states:
        await state.start()
        transport = httpx.ASGITransport(app=build_app(settings, state=state, manage_runtime=False))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://replica/api/v1", timeout=30))
    yield clients[0], clients[1], states[0], states[1]
    for client, state in zip(clients, states, strict=True):
        await client.aclose()
        await state.shutdown()


async def _pending(client: httpx.AsyncClient, sid: str) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while not (found := (await client.get("/approvals", params={"session": sid})).json()):
        assert time.monotonic() < deadline, "no approval was requested"
        await asyncio.sleep(0.05)
    [pending] = found
    return pending  # type: ignore[no-any-return]


def _forwarded(r: httpx.Response, a: ServerState, b: ServerState) -> None:
    assert (r.headers[REPLICA_HEADER], r.headers[HOLDER_HEADER]) == (b.holder_id, a.holder_id), r.headers


async def test_reads_and_writes_reach_the_holder_from_the_other_replica(pair: Pair) -> None:
    a, b, a_state, b_state = pair
    sid = (await a.post("/sessions", json={"team": "board", "input": "go"})).json()["id"]
    assert sid not in b_state.held
    pending = await _pending(b, sid)  # listed by the holder
    board = await b.get(f"/sessions/{sid}/blackboard")
    _forwarded(board, a_state, b_state)
    assert [(e["key"], e["value"]) for e in board.json()["entries"]] == [("plan/step", "one")]
    assert [t["goal"] for t in (await b.get(f"/sessions/{sid}/tasks")).json()["tasks"]] == ["write the file"]
    missing = await b.post(f"/approvals/{sid}:nope/approve", json={})  # the holder's refusal, as it is
    assert missing.status_code == 404 and missing.json()["error"] == f"approval {sid}:nope is not pending"
    _forwarded(missing, a_state, b_state)
    decided = await b.post(f"/approvals/{pending['id']}/approve", json={})
    assert decided.status_code == 200 and decided.json()["approved"] is True
    _forwarded(decided, a_state, b_state)
    result = await b.get(f"/sessions/{sid}/result", params={"wait_s": 20})
    assert result.json() == {"status": "completed", "output": "done", "error": None}
    _forwarded(result, a_state, b_state)
    local = await a.get(f"/sessions/{sid}/result")
    assert local.headers[REPLICA_HEADER] == local.headers[HOLDER_HEADER] == a_state.holder_id
    ended = await b.post(f"/sessions/{sid}/cancel")
    assert ended.status_code == 409 and "has ended (completed)" in ended.json()["error"]
    stats = await b_state.directory.forward_stats()
    assert stats.answered >= 6 and stats.timed_out == 0


async def test_cancel_forwarded_then_a_stopped_holder_is_refused_at_once(pair: Pair) -> None:
    a, b, a_state, b_state = pair
    first = (await a.post("/sessions", json={"team": "gated", "input": "go"})).json()["id"]
    await _pending(b, first)
    cancelled = await b.post(f"/sessions/{first}/cancel")
    assert cancelled.status_code == 202
    _forwarded(cancelled, a_state, b_state)
    assert (await b.get(f"/sessions/{first}/result", params={"wait_s": 10})).json()["status"] == "cancelled"
    second = (await a.post("/sessions", json={"team": "gated", "input": "go"})).json()["id"]
    pending = await _pending(b, second)
    assert a_state._holding is not None
    await a_state._holding.stop()  # the holder stops (its replica goes away): it unregisters
    started = time.monotonic()
    refused = await b.post(f"/approvals/{pending['id']}/approve", json={})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == f"session {second} is not held by a live server process"
    assert f"POST /api/v1/sessions/{second}/resume" in refused.json()["reason"]
    assert time.monotonic() - started < 2
