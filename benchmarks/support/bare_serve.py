"""The baseline of ``benchmarks/serve.py``: a bare Ray Serve endpoint with the three routes the
benchmark uses (create a session, send a turn, stream its events), and no runtime behind it.

A turn re-emits a recorded turn's events (the same JSON, stamped with a fresh ``ts``) to every
subscriber of the session, so the clients read the same frames as from Troupe's server.
"""


import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from ray import serve

api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=10_000)
@serve.ingress(api)
class BareSessions:
    def __init__(self, turn_events: list[dict[str, Any]]) -> None:
        self.turn_events = turn_events
        self.ids = itertools.count(1)
        self.logs: dict[str, list[str]] = {}
        self.done: dict[str, bool] = {}
        self.wake: dict[str, asyncio.Event] = {}

    def _emit(self, sid: str) -> None:
        for template in self.turn_events:
            event = {**template, "session_id": sid, "ts": datetime.now(UTC).isoformat()}
            self.logs[sid].append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        self.wake[sid].set()

    @api.post("/api/v1/sessions", status_code=201)
    async def create(self, request: Request) -> dict[str, Any]:
        await request.body()
        sid = f"s-{next(self.ids)}"
        self.logs[sid], self.done[sid], self.wake[sid] = [], False, asyncio.Event()
        self._emit(sid)
        return {"id": sid, "status": "running"}

    @api.post("/api/v1/sessions/{sid}/turns", status_code=202)
    async def turn(self, sid: str, request: Request) -> dict[str, Any]:
        await request.body()
        self._emit(sid)
        return {"accepted": True, "session_id": sid}

    @api.post("/api/v1/sessions/{sid}/cancel", status_code=202)
    async def cancel(self, sid: str) -> dict[str, Any]:
        self.done[sid] = True
        self.wake[sid].set()
        return {"accepted": True, "session_id": sid}

    @api.get("/api/v1/sessions/{sid}/events")
    async def events(self, sid: str, request: Request) -> StreamingResponse:
        async def frames() -> AsyncIterator[str]:
            pos = int(request.headers.get("last-event-id") or 0)
            while True:
                log = self.logs[sid]
                while pos < len(log):
                    pos += 1
                    yield f"id: {pos}\n{log[pos - 1]}"
                if self.done[sid]:
                    yield 'event: end\ndata: {"status": "cancelled"}\n\n'
                    return
                self.wake[sid].clear()
                await self.wake[sid].wait()

        return StreamingResponse(frames(), media_type="text/event-stream")

    @api.get("/rss")
    async def rss(self) -> dict[str, int]:
        import psutil

        return {"pid": os.getpid(), "rss": psutil.Process().memory_info().rss}


__all__ = ["BareSessions"]
