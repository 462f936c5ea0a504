"""Who is asking ``troupe mcp serve``, and how a refusal is answered and recorded.

Over streamable HTTP the API-key gate (:mod:`.access`) puts the key's :class:`Principal` (and the log its
refusals go to) on the request's ASGI scope (:func:`remembering`); :class:`CallerMiddleware`, around every MCP
request the SDK's server handles, makes them the request's :func:`caller`. Over stdio, and for an in-memory
client, there is no HTTP request: the caller is the local admin (user ``local``), as on a keyless ``troupe
serve`` over loopback.

The service (:mod:`.core`) decides with the principal and raises :class:`AccessDenied`; the MCP layer answers
it (a tool error, or a JSON-RPC error -32602 whose ``data`` names the code) and records it as an
``access.denied`` event whose ``method`` is the MCP method and ``path`` the tool or resource URI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Final

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from troupe.runtime.access import LOCAL_ADMIN, AccessDenied, DenialLog, Principal, denial_event

PRINCIPAL_KEY: Final = "troupe.principal"
"""The ASGI scope key the key gate puts the request's principal under."""
DENIALS_KEY: Final = "troupe.denials"
"""The ASGI scope key of the :class:`DenialLog` the server records refusals in."""


@dataclass(frozen=True)
class Caller:
    """The principal of one MCP request and where its refusals go."""

    principal: Principal | None
    """``None``: an HTTP request that came past no key gate (an app built without :func:`.access.protect`)."""
    method: str = ""
    """The MCP method (``tools/call``, ``resources/read``, ``resources/subscribe``...)."""
    target: str = ""
    """The tool's name or the resource's URI the request names."""
    client: str | None = None
    denials: DenialLog | None = None

    @property
    def who(self) -> Principal:
        """The principal; refuses (401) a request that came past no key check: nothing is answered without one."""
        if self.principal is None:
            raise AccessDenied(401, "missing_key", "this MCP request carries no checked API key; serve the app "
                               "behind troupe.runtime.mcp_server.access.protect (troupe mcp serve --http does)")
        return self.principal

    def refused(self, denied: AccessDenied) -> AccessDenied:
        """Record ``denied`` as an ``access.denied`` event (over HTTP; stdio has no lake log of refusals)."""
        if self.denials is not None:
            self.denials.record(denial_event(denied, method=self.method, path=self.target, client=self.client,
                                             interface="mcp"))
        return denied

    def error(self, denied: AccessDenied) -> MCPError:
        """``denied`` recorded, as the JSON-RPC error answering a resource request (-32602, as for a resource
        the client cannot read; ``data`` carries the code, the HTTP status it would have, the session)."""
        self.refused(denied)
        data: dict[str, Any] = {"error": denied.error, "status": denied.status_code}
        if denied.session_id:
            data["session"] = denied.session_id
        if self.target:
            data["uri" if "://" in self.target else "name"] = self.target
        return MCPError(code=INVALID_PARAMS, message=denied.reason, data=data)


LOCAL: Final = Caller(LOCAL_ADMIN)
"""The caller of a request without HTTP (stdio, in-memory): the local admin."""
_CALLER: ContextVar[Caller] = ContextVar("troupe_mcp_caller", default=LOCAL)


def caller() -> Caller:
    """The current MCP request's caller (:data:`LOCAL` outside any request)."""
    return _CALLER.get()


def _target(params: Any) -> str:
    if not isinstance(params, Mapping):
        return ""
    for key in ("name", "uri"):
        if isinstance(params.get(key), str):
            return str(params[key])
    ref = params.get("ref")
    if isinstance(ref, Mapping):
        return str(ref.get("uri") or ref.get("name") or "")
    return ""


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller of the request ``ctx`` handles (its HTTP request's scope names it; no HTTP: the local admin)."""
    base = replace(LOCAL, method=ctx.method, target=_target(ctx.params))
    request = ctx.request
    scope = getattr(request, "scope", None)
    if scope is None:
        return base
    client = scope.get("client")
    return replace(base, principal=scope.get(PRINCIPAL_KEY), denials=scope.get(DENIALS_KEY),
                   client=str(client[0]) if client else None)


class CallerMiddleware:
    """The SDK server's middleware that makes each request's :func:`caller` known to the handlers."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        token = _CALLER.set(caller_of(ctx))
        try:
            return await call_next(ctx)
        finally:
            _CALLER.reset(token)


def remembering(denials: DenialLog) -> Callable[[MutableMapping[str, Any], Principal], None]:
    """The key gate's ``on_principal`` hook: the principal and ``denials`` onto the request's scope, and the
    principal as the SDK's authenticated user, so an MCP connection (``Mcp-Session-Id``) opened with one user's
    key answers no other user's (the SDK answers 404, as for an unknown connection)."""
    def hook(scope: MutableMapping[str, Any], who: Principal) -> None:
        scope[PRINCIPAL_KEY] = who
        scope[DENIALS_KEY] = denials
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=who.user, subject=who.user, scopes=[who.role]))
    return hook


__all__ = ["DENIALS_KEY", "LOCAL", "PRINCIPAL_KEY", "Caller", "CallerMiddleware", "caller", "caller_of",
           "remembering"]
