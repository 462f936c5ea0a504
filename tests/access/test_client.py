"""The HTTP client without a server (httpx2.MockTransport): SSE resumed with Last-Event-ID after a
dropped connection, refusals as typed errors, a 429 retried after Retry-After."""

from __future__ import annotations

import httpx2
import pytest

from troupe.runtime.client import ForbiddenError, TroupeClient, UnauthorizedError
from troupe.runtime.events import Event, make_event

EVENTS = [make_event("agent.state", run_id="r-1", session_id="s-1", agent="lead", payload={"state": str(i)})
          for i in range(3)]


def _frame(n: int, e: Event) -> str:
    return f"id: {n}\nevent: {e.type}\ndata: {e.model_dump_json()}\n\n"


async def test_events_resume_after_a_dropped_connection_without_loss_or_repeat() -> None:
    seen: list[str | None] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        last = request.headers.get("last-event-id")
        seen.append(last)
        if last is None:  # two events, then the connection ends without the end frame
            body = ": ping\n\n" + _frame(1, EVENTS[0]) + _frame(2, EVENTS[1])
        else:
            start = int(last)
            body = "".join(_frame(n, EVENTS[n - 1]) for n in range(start + 1, 4))
            body += 'event: llm.token\ndata: ' + make_event("llm.token", run_id="r-1", session_id="s-1",
                                                            payload={"text": "x"}).model_dump_json() + "\n\n"
            body += 'event: end\ndata: {"status": "completed"}\n\n'
        return httpx2.Response(200, text=body, headers={"content-type": "text/event-stream"})

    async with TroupeClient("http://t", key="trp_k", transport=httpx2.MockTransport(handler)) as client:
        stream = client.events("s-1")
        stream.backoff_s = 0
        got = [e async for e in stream]
    assert [e.event_id for e in got[:3]] == [e.event_id for e in EVENTS] and got[3].type == "llm.token"
    assert seen == [None, "2"] and stream.end == {"status": "completed"} and stream.last_id == 3


async def test_refusals_are_typed_and_429_is_retried() -> None:
    calls: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        assert request.headers["authorization"] == "Bearer trp_k"
        if request.url.path.endswith("/sessions/s-2"):
            return httpx2.Response(403, json={"error": "other_user_session", "reason": "session s-2 belongs to another user"})
        if request.url.path.endswith("/teams"):
            return httpx2.Response(401, json={"error": "revoked_key", "reason": "key k was revoked"})
        if len(calls) == 1:
            return httpx2.Response(429, json={"error": "rate_limited", "reason": "slow down"}, headers={"Retry-After": "0"})
        return httpx2.Response(200, json={"ok": True, "version": "1"})

    async with TroupeClient("http://t/", key="trp_k", transport=httpx2.MockTransport(handler)) as client:
        assert (await client.health()).version == "1"
        with pytest.raises(ForbiddenError, match="belongs to another user") as info:
            await client.session("s-2")
        assert info.value.error == "other_user_session"
        with pytest.raises(UnauthorizedError, match="HTTP 401 revoked_key"):
            await client.teams()
    assert calls == ["/api/v1/health", "/api/v1/health", "/api/v1/sessions/s-2", "/api/v1/teams"]
