"""The FastAPI side of access control: who a request is, what it may do, and recording refusals.

Every route depends on :func:`principal` (any valid key) or ``require_role("user")`` and checks
ownership with :func:`can_see`. The decisions are :class:`~troupe.runtime.access.AccessControl`'s
(plain Python); this module reads the ``Authorization`` header, answers refusals with
``{"error", "reason"}`` (401 with ``WWW-Authenticate: Bearer``, 429 with ``Retry-After``), and
records each one as an ``access.denied`` event in the server's lake. :func:`install` wires it into
an app (``build_app`` calls it): the key store is ``settings.keys_path`` (``None``:
``$TROUPE_HOME/keys.json``), and a settings host beyond loopback with no key refuses to build.
Refusals the routes raise themselves (``ApiError`` 401/403/429, such as another user's session)
are recorded too, so no route can refuse without a trace.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from troupe.runtime.access import (
    AccessControl,
    AccessDenied,
    DenialLog,
    KeyStore,
    Principal,
    RateLimit,
    RateLimiter,
    Role,
    check_bind,
    denial_event,
    retry_after_header,
)
from troupe.runtime.events import Event, events_to_columns
from troupe.runtime.server.errors import ApiError

RATE_ENV = "TROUPE_RATE_LIMIT"
"""``PER_SECOND[:BURST]``: the default rate limit of every key (a key's own limit wins)."""
RECORDED = frozenset({401, 403, 429})


@dataclass
class ServerAccess:
    """What a running app decides and records with (``app.state.access``)."""

    control: AccessControl
    denials: DenialLog


def default_rate_limit(settings: Any = None) -> RateLimit:
    """``settings.rate_limit`` if the settings have one, else ``$TROUPE_RATE_LIMIT``, else the default."""
    configured = getattr(settings, "rate_limit", None)
    if configured is not None:
        return RateLimit.model_validate(configured)
    raw = os.environ.get(RATE_ENV)
    if not raw:
        return RateLimit()
    rate, _, burst = raw.partition(":")
    return RateLimit(per_second=float(rate), burst=int(burst) if burst else max(1, int(float(rate) * 6)))


def lake_writer(lake: str | None) -> Callable[[Sequence[Event]], object]:
    """Writes refusals into ``lake`` (default ``$TROUPE_LAKE`` or ``./.troupe/lake``)."""
    def write(events: Sequence[Event]) -> object:
        from troupe.runtime.eventlog.lake import LakeWriter, default_lake

        return LakeWriter(lake or str(default_lake())).write(events_to_columns(list(events)))

    return write


def install(app: FastAPI, settings: Any, *, denials: DenialLog | None = None, flush_s: float = 1.0) -> ServerAccess:
    """Put access control on ``app``: the key store of ``settings.keys_path``, refusals answered and
    recorded in ``settings.lake``. Raises ``ConfigError`` when ``settings.host`` is beyond loopback
    and no key exists (the server must not start)."""
    store = KeyStore(getattr(settings, "keys_path", None))
    host = getattr(settings, "host", "127.0.0.1")
    check_bind(host, store, what="troupe serve")
    log = denials or DenialLog(lake_writer(getattr(settings, "lake", None)), interval_s=flush_s)
    atexit.register(log.close)
    access = ServerAccess(AccessControl(store, limiter=RateLimiter(default_rate_limit(settings))), log)
    app.state.access = access
    app.add_exception_handler(AccessDenied, _answer_denied)
    routes_handler = app.exception_handlers.get(ApiError)
    if routes_handler is not None:
        app.add_exception_handler(ApiError, _recording(routes_handler))
    return access


def access_of(request: Request) -> ServerAccess:
    access = getattr(request.app.state, "access", None)
    if access is None:  # an app built without install(): keys of the default store, refusals in the default lake
        access = install(request.app, getattr(request.app.state, "settings", None))
    return access


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _session_concerned(request: Request) -> str | None:
    params = request.path_params
    if "sid" in params or "session_id" in params:
        return str(params.get("sid") or params.get("session_id"))
    if "aid" in params or "eid" in params:  # approval and elicitation ids are "<session id>:<n>"
        sid, sep, _ = str(params.get("aid") or params["eid"]).rpartition(":")
        return sid if sep else None
    return request.query_params.get("session")


def _record(request: Request, denied: AccessDenied) -> None:
    event = denial_event(denied, method=request.method, path=request.url.path, client=_client(request),
                         session_id=denied.session_id or _session_concerned(request))
    access_of(request).denials.record(event)


async def _answer_denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccessDenied)
    _record(request, exc)
    headers = {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after_s is not None:
        headers["Retry-After"] = retry_after_header(exc.retry_after_s)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def _recording(handler: Callable[[Request, Any], Awaitable[Response] | Response]) -> Callable[..., Awaitable[Response]]:
    """The routes' own error handler, recording the refusals among its answers."""
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status in RECORDED:
            who = getattr(request.state, "principal", None)
            code = "other_user_session" if "belongs to another user" in exc.error else "forbidden"
            _record(request, AccessDenied(exc.status, code, f"{exc.error}: {exc.reason}" if exc.reason else exc.error,
                                          principal=who))
        result = handler(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return handle


async def principal(request: Request) -> Principal:
    """Who is asking: the key's user and role (401 without a valid key, 429 over its rate limit);
    the local admin when no key exists and the request comes over loopback."""
    who = access_of(request).control.authenticate(request.headers.get("authorization"), client=_client(request))
    request.state.principal = who
    return who


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that answers 403 (``role_too_low``) below ``role``."""
    async def check(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
        return AccessControl.require_role(who, role, action=f"{request.method} {request.url.path}")

    return check


def can_see(p: Principal, owner: str | None) -> bool:
    """Whether ``p`` may see a session owned by ``owner`` (an admin sees all)."""
    return p.can_see(owner)


__all__ = ["Principal", "ServerAccess", "access_of", "can_see", "install", "principal", "require_role"]
