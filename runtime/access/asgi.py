"""The API-key gate of Troupe's ASGI servers that are not FastAPI apps (``troupe mcp serve --http``, ``troupe a2a
serve``): every HTTP request is authenticated before the app sees it; a refusal is answered 401/403/429 as JSON
(with ``WWW-Authenticate`` / ``Retry-After``) and recorded as an ``access.denied`` event. Plain ASGI, no framework.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from troupe.runtime.access.denials import DenialLog, denial_event
from troupe.runtime.access.guard import AccessControl, AccessDenied
from troupe.runtime.access.models import Principal, Role
from troupe.runtime.access.ratelimit import retry_after_header

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class KeyGate:
    """ASGI middleware in front of ``app``: a request needs a key of ``role`` or above (``public`` GET paths don't).

    ``interface`` names the server in refusals (``mcp``, ``a2a``); ``on_principal`` sees who was let in (the A2A
    server puts the key's user on the request, so a decision on an approval names who made it)."""

    def __init__(self, app: App, control: AccessControl, denials: DenialLog, *, role: Role, interface: str,
                 action: str, public: Collection[str] = (),
                 on_principal: Callable[[Scope, Principal], None] | None = None) -> None:
        self.app, self.control, self.denials = app, control, denials
        self.role, self.interface, self.action = role, interface, action
        self.public = frozenset(public)
        self.on_principal = on_principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method") == "GET" and scope.get("path") in self.public):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope["client"][0] if scope.get("client") else None
        try:
            who = self.control.authenticate(headers.get("authorization"), client=client)
            self.control.require_role(who, self.role, action=self.action)
        except AccessDenied as denied:
            self.denials.record(denial_event(denied, method=scope.get("method", ""), path=scope.get("path", ""),
                                             client=client, interface=self.interface))
            await _refuse(send, denied)
            return
        if self.on_principal is not None:
            self.on_principal(scope, who)
        await self.app(scope, receive, send)


async def _refuse(send: Send, denied: AccessDenied) -> None:
    body = json.dumps(denied.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if denied.status_code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if denied.retry_after_s is not None:
        headers.append((b"retry-after", retry_after_header(denied.retry_after_s).encode()))
    await send({"type": "http.response.start", "status": denied.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["KeyGate"]
