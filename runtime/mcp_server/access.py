"""API keys on ``troupe mcp serve --http``: the same keys, roles and refusals as ``troupe serve``.

With no key in the store the server listens on loopback only and every loopback client may use it
(as before). Once a key exists, every HTTP request needs ``Authorization: Bearer trp_...`` of a key
with role ``user`` or above (the tools run teams); refusals are answered 401/403/429 with
``{"error", "reason"}`` and recorded as ``access.denied`` events (``agent`` ``mcp``) in the lake.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from troupe.runtime.access import (
    AccessControl,
    AccessDenied,
    DenialLog,
    KeyStore,
    RateLimit,
    RateLimiter,
    Role,
    check_bind,
    denial_event,
    retry_after_header,
)
from troupe.runtime.events import Event, events_to_columns

NEEDED_ROLE: Role = "user"
MCP_RATE = RateLimit(per_second=100.0, burst=400)
"""The default limit per key (a key's own ``rate_limit`` wins): an MCP client makes several HTTP requests per
operation (the call, its notifications, the GET stream, answers to sampling or elicitation), so the HTTP API's
10/s would refuse an ordinary burst of calls (the conformance suite makes about 170 in 2 s)."""


class KeyMiddleware:
    """ASGI middleware: authenticate every HTTP request before the MCP app sees it."""

    def __init__(self, app: ASGIApp, control: AccessControl, denials: DenialLog, *, role: Role = NEEDED_ROLE) -> None:
        self.app = app
        self.control = control
        self.denials = denials
        self.role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope["client"][0] if scope.get("client") else None
        try:
            who = self.control.authenticate(headers.get("authorization"), client=client)
            self.control.require_role(who, self.role, action="troupe mcp serve")
        except AccessDenied as denied:
            self.denials.record(denial_event(denied, method=scope.get("method", ""), path=scope.get("path", ""),
                                             client=client, interface="mcp"))
            extra = {"WWW-Authenticate": "Bearer"} if denied.status_code == 401 else {}
            if denied.retry_after_s is not None:
                extra["Retry-After"] = retry_after_header(denied.retry_after_s)
            await JSONResponse(denied.body(), status_code=denied.status_code, headers=extra)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def protect(app: ASGIApp, *, host: str, lake: str | Path | None, keys_path: str | Path | None = None) -> tuple[ASGIApp, DenialLog]:
    """``app`` behind API keys; a ConfigError when ``host`` is beyond loopback and no key exists."""
    store = KeyStore(keys_path)
    check_bind(host, store, what="troupe mcp serve --http")

    def write(events: Sequence[Event]) -> Any:
        from troupe.runtime.eventlog.lake import LakeWriter, default_lake

        return LakeWriter(lake or default_lake()).write(events_to_columns(list(events)))

    denials = DenialLog(write)
    return KeyMiddleware(app, AccessControl(store, limiter=RateLimiter(MCP_RATE)), denials), denials


__all__ = ["KeyMiddleware", "protect"]
