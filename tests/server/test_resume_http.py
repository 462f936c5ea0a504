"""``POST /api/v1/sessions/{sid}/resume`` over real HTTP: a session whose process died (checkpoints
on the server's lake) is resumed by the server, keeps its owner, ends as if undisturbed, and its
stream shows the resume; a finished session is refused."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from benchmarks.support.recovery_team import expected_reply, ledger_items, recovery_team, request_text
from tests.runtime.test_recovery_local import crash
from tests.server.conftest import LiveServer
from troupe.runtime.api import Troupe


@pytest.fixture(autouse=True)
def fast_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_CHAOS_STEP_S", "0.05")


async def test_resume_an_interrupted_session_over_http(server: LiveServer) -> None:
    ledger = server.lake.parent / "ledger"
    first = Troupe.local(lake=server.lake, checkpoints=True)  # another process on the same lake, then it dies
    session = await first.open(recovery_team(), owner="local")
    await session.send(request_text(ledger, "x"))
    while len(ledger_items(ledger)) < 2:  # both workers applied their effect: their turns are under way
        await asyncio.sleep(0.01)
    await first.backend.flush()  # what it did so far is in the lake (the resumed stream goes on from it)
    crash(first)
    sid = str(session.id)
    async with httpx.AsyncClient(base_url=server.url + "/api/v1", timeout=30) as client:
        listed = {s["id"]: s for s in (await client.get("/sessions")).json()}
        assert listed[sid]["status"] == "running" and listed[sid]["live"] is False  # checkpointed, held nowhere
        resumed = await client.post(f"/sessions/{sid}/resume")
        assert resumed.status_code == 200, resumed.text
        info = resumed.json()
        assert (info["id"], info["user"], info["status"], info["live"]) == (sid, "local", "running", True)
        again = await client.post(f"/sessions/{sid}/resume")
        assert again.status_code == 409 and "is running already" in again.json()["error"]
        result = (await client.get(f"/sessions/{sid}/result", params={"wait_s": 30})).json()
        assert result == {"status": "completed", "output": expected_reply("x"), "error": None}
        for _ in range(200):  # the server records the end once the session's events are all in
            if (await client.get(f"/sessions/{sid}")).json()["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        finished = await client.post(f"/sessions/{sid}/resume")
        assert finished.status_code == 409 and set(finished.json()) == {"error", "reason"}
        assert "already ended" in finished.json()["reason"]
        unknown = await client.post("/sessions/s-nothere/resume")
        assert unknown.status_code == 404
    frames = await asyncio.to_thread(server.sse, f"/sessions/{sid}/events")
    assert frames[-1] == {"event": "end", "data": {"status": "completed"}}
    types = [f["event"] for f in frames[:-1]]
    assert types.count("session.resumed") == 1 and types.count("session.started") == 1
    assert types[0] == "session.started" and types.index("session.resumed") > 1  # the first run's events first
    assert [int(f["id"]) for f in frames[:-1]] == list(range(1, len(types) + 1))
    timeline = (await asyncio.to_thread(server.client.get, f"/sessions/{sid}/timeline")).json()
    assert [f["data"]["event_id"] for f in frames[:-1]] == [e["event_id"] for e in timeline]
    assert sorted(ledger_items(ledger)) == ["x-worker_a", "x-worker_b"]  # each side effect exactly once
