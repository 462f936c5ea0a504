"""A typed async client of the Troupe HTTP API (``troupe serve``): every route under ``/api/v1``.

    async with TroupeClient("http://127.0.0.1:8321", key=os.environ["TROUPE_API_KEY"]) as client:
        info = await client.create_session("research_team", "What is 2+2?")
        async for event in client.events(info.id):
            print(event.type)
        print((await client.result(info.id, wait_s=30)).output)

Bodies are the server's own pydantic models (:mod:`troupe.runtime.server.models`). A refusal
raises :class:`~troupe.runtime.client.errors.ApiError` (401, 403 and 429 have their own classes);
a 429 is retried after its ``Retry-After`` (up to ``retries_429`` times, each wait at most 10 s).
The transport is ``httpx2`` (the openai and mcp SDKs' own, so nothing new is installed).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final, TypeVar

import httpx2
from pydantic import BaseModel, TypeAdapter

from troupe.runtime.client.errors import ApiError, ServerUnreachableError, error_for
from troupe.runtime.client.stream import EventStream
from troupe.runtime.events import Event
from troupe.runtime.server.elicitation_models import ElicitationAnswered, ElicitationInfo
from troupe.runtime.server.models import (
    Accepted,
    ApprovalInfo,
    BlackboardView,
    DecisionResponse,
    Health,
    SessionInfo,
    SessionResultBody,
    TaskList,
    TeamInfo,
    ValidateResponse,
)

API: Final = "/api/v1"
KEY_ENV: Final = "TROUPE_API_KEY"
MAX_RETRY_WAIT_S: Final = 10.0
M = TypeVar("M", bound=BaseModel)


class TroupeClient:
    """One server, one key (``key`` or ``$TROUPE_API_KEY``; none for a keyless server on loopback)."""

    def __init__(self, url: str, *, key: str | None = None, timeout: float = 30.0, retries_429: int = 3,
                 transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        key = key if key is not None else os.environ.get(KEY_ENV) or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # Reads of an event stream wait for the server's 15 s heartbeat, so the read timeout is longer.
        self._http = httpx2.AsyncClient(base_url=self.url + API, headers=headers, transport=transport,
                                        timeout=httpx2.Timeout(timeout, read=max(timeout, 60.0)))
        self.retries_429 = retries_429

    async def __aenter__(self) -> TroupeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> httpx2.Response:
        for attempt in range(self.retries_429 + 1):
            request = self._http.build_request(method, path, **kwargs)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx2.TransportError as e:
                raise ServerUnreachableError(f"no answer from {self.url} ({type(e).__name__}: {e})", url=self.url) from None
            if response.status_code < 400:
                return response
            if stream:
                await response.aread()
            error = _error(response)
            if response.status_code != 429 or attempt == self.retries_429:
                raise error
            await asyncio.sleep(min(1.0 if error.retry_after_s is None else error.retry_after_s, MAX_RETRY_WAIT_S))
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, **kwargs)).json()

    async def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(await self._json(method, path, **kwargs))

    # --- the API ---------------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._model(Health, "GET", "/health")

    async def teams(self) -> list[TeamInfo]:
        return TypeAdapter(list[TeamInfo]).validate_python(await self._json("GET", "/teams"))

    async def validate_team(self, yaml_text: str) -> ValidateResponse:
        return await self._model(ValidateResponse, "POST", "/teams/validate", json={"yaml": yaml_text})

    async def create_session(self, team: str, input: str, *, placement: str | None = None, stream_tokens: bool = False,
                             conversation: bool = False, model: str | None = None) -> SessionInfo:
        body = {"team": team, "input": input, "placement": placement, "stream_tokens": stream_tokens,
                "conversation": conversation, "model": model}
        return await self._model(SessionInfo, "POST", "/sessions", json={k: v for k, v in body.items() if v is not None})

    async def sessions(self, *, status: str | None = None, team: str | None = None, user: str | None = None,
                       limit: int | None = None) -> list[SessionInfo]:
        params = {k: v for k, v in {"status": status, "team": team, "user": user, "limit": limit}.items() if v is not None}
        return TypeAdapter(list[SessionInfo]).validate_python(await self._json("GET", "/sessions", params=params))

    async def session(self, session_id: str) -> SessionInfo:
        return await self._model(SessionInfo, "GET", f"/sessions/{session_id}")

    async def send(self, session_id: str, text: str, *, to: str | None = None) -> Accepted:
        body = {"input": text} | ({"to": to} if to else {})
        return await self._model(Accepted, "POST", f"/sessions/{session_id}/turns", json=body)

    async def result(self, session_id: str, *, wait_s: float | None = None) -> SessionResultBody:
        params = {"wait_s": wait_s} if wait_s is not None else {}
        timeout = httpx2.Timeout(30.0, read=(wait_s or 0) + 30.0)
        return await self._model(SessionResultBody, "GET", f"/sessions/{session_id}/result", params=params, timeout=timeout)

    async def cancel(self, session_id: str) -> Accepted:
        return await self._model(Accepted, "POST", f"/sessions/{session_id}/cancel")

    async def resume(self, session_id: str) -> SessionInfo:
        return await self._model(SessionInfo, "POST", f"/sessions/{session_id}/resume")

    def events(self, session_id: str, *, after: int | None = None) -> EventStream:
        """The session's events from event ``after + 1`` (the first by default) to its end."""
        async def open_stream(last_id: int | None) -> httpx2.Response:
            headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
            return await self._send("GET", f"/sessions/{session_id}/events", headers=headers, stream=True)

        return EventStream(open_stream, after=after)

    async def timeline(self, session_id: str) -> list[Event]:
        return TypeAdapter(list[Event]).validate_python(await self._json("GET", f"/sessions/{session_id}/timeline"))

    async def approvals(self, session_id: str | None = None) -> list[ApprovalInfo]:
        params = {"session": session_id} if session_id else {}
        return TypeAdapter(list[ApprovalInfo]).validate_python(await self._json("GET", "/approvals", params=params))

    async def approve(self, approval_id: str, reason: str = "") -> DecisionResponse:
        return await self._model(DecisionResponse, "POST", f"/approvals/{approval_id}/approve", json={"reason": reason})

    async def deny(self, approval_id: str, reason: str = "") -> DecisionResponse:
        return await self._model(DecisionResponse, "POST", f"/approvals/{approval_id}/deny", json={"reason": reason})

    async def elicitations(self, session_id: str | None = None) -> list[ElicitationInfo]:
        """MCP servers' pending requests for input (of one session, or of every session the key sees)."""
        path = f"/sessions/{session_id}/elicitations" if session_id else "/elicitations"
        return TypeAdapter(list[ElicitationInfo]).validate_python(await self._json("GET", path))

    async def answer_elicitation(self, elicitation_id: str, action: str = "accept",
                                 content: dict[str, Any] | None = None, reason: str = "") -> ElicitationAnswered:
        """Answer one: ``accept`` with the form's values (a misfit raises an ``ApiError`` 422 whose reason says
        what is wrong; the request stays pending), ``decline`` or ``cancel``."""
        body = {"action": action, "content": content, "reason": reason}
        return await self._model(ElicitationAnswered, "POST", f"/elicitations/{elicitation_id}/answer", json=body)

    async def blackboard(self, session_id: str) -> BlackboardView:
        return await self._model(BlackboardView, "GET", f"/sessions/{session_id}/blackboard")

    async def tasks(self, session_id: str) -> TaskList:
        return await self._model(TaskList, "GET", f"/sessions/{session_id}/tasks")


def _error(response: httpx2.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail")
    if isinstance(detail, dict):
        body = detail
    error = str(body.get("error") or response.reason_phrase or "error")
    reason = str(body.get("reason") or (detail if isinstance(detail, str) else "") or "")
    retry = response.headers.get("Retry-After")
    return error_for(response.status_code, error, reason, float(retry) if retry and retry.isdigit() else None)


__all__ = ["API", "KEY_ENV", "TroupeClient"]
