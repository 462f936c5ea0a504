"""API keys on ``troupe a2a serve``: the same keys, roles and refusals as ``troupe serve`` and ``troupe mcp serve --http``.

With no key in the store the server listens on loopback only and answers loopback clients (as ``troupe mcp
serve`` does); once a key exists every JSON-RPC request needs ``Authorization: Bearer trp_...`` of a key with
role ``user`` or above. The agent card stays public (A2A clients read it to learn how to authenticate: it
declares the Bearer scheme). The key's user (``local`` without keys) is the request's user, so a decision on an
approval names who made it. Refusals are answered 401/403/429 and recorded as ``access.denied`` events
(``agent`` ``a2a``) in the lake.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.authentication import SimpleUser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from troupe.runtime.access import (
    AccessControl,
    AccessDenied,
    DenialLog,
    KeyStore,
    Role,
    denial_event,
    retry_after_header,
)
from troupe.runtime.events import Event, events_to_columns

NEEDED_ROLE: Role = "user"
PUBLIC = frozenset({AGENT_CARD_WELL_KNOWN_PATH})


class KeyGate:
    """ASGI middleware: every request but the agent card's is authenticated before the A2A app sees it."""

    def __init__(self, app: ASGIApp, control: AccessControl, denials: DenialLog) -> None:
        self.app, self.control, self.denials = app, control, denials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method") == "GET" and scope.get("path") in PUBLIC):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope["client"][0] if scope.get("client") else None
        try:
            who = self.control.authenticate(headers.get("authorization"), client=client)
            self.control.require_role(who, NEEDED_ROLE, action="troupe a2a serve")
        except AccessDenied as denied:
            self.denials.record(denial_event(denied, method=scope.get("method", ""), path=scope.get("path", ""),
                                             client=client, interface="a2a"))
            extra = {"WWW-Authenticate": "Bearer"} if denied.status_code == 401 else {}
            if denied.retry_after_s is not None:
                extra["Retry-After"] = retry_after_header(denied.retry_after_s)
            await JSONResponse(denied.body(), status_code=denied.status_code, headers=extra)(scope, receive, send)
            return
        scope["user"] = SimpleUser(who.user)  # the SDK's call context carries it: who answered an approval
        await self.app(scope, receive, send)


def gate(app: ASGIApp, store: KeyStore, lake: str | Path) -> tuple[ASGIApp, DenialLog]:
    """``app`` behind the store's API keys; denials written to ``lake``."""

    def write(events: Sequence[Event]) -> Any:
        from troupe.runtime.eventlog.lake import LakeWriter

        return LakeWriter(lake).write(events_to_columns(list(events)))

    denials = DenialLog(write)
    return KeyGate(app, AccessControl(store), denials), denials


__all__ = ["KeyGate", "gate"]
