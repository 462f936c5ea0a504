"""API keys on ``troupe mcp serve --http``: the same keys, roles and refusals as ``troupe serve``.

With no key in the store the server listens on loopback only and every loopback client may use it
(as before). Once a key exists, every HTTP request needs ``Authorization: Bearer trp_...`` of a key
with role ``user`` or above (the tools run teams); refusals are answered 401/403/429 with
``{"error", "reason"}`` and recorded as ``access.denied`` events (``agent`` ``mcp``) in the lake.

The key's user is the request's caller (:mod:`.owners`): the sessions its tools open belong to that user, and
its requests touch only that user's sessions and lake rows (an admin key: everyone's); refusals made there are
recorded in the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from troupe.runtime.access import AccessControl, DenialLog, KeyStore, RateLimit, RateLimiter, Role, check_bind
from troupe.runtime.access.asgi import KeyGate
from troupe.runtime.events import Event, events_to_columns
from troupe.runtime.mcp_server.owners import remembering

NEEDED_ROLE: Role = "user"
MCP_RATE = RateLimit(per_second=100.0, burst=400)
"""The default limit per key (a key's own ``rate_limit`` wins): an MCP client makes several HTTP requests per
operation (the call, its notifications, the GET stream, answers to sampling or elicitation), so the HTTP API's
10/s would refuse an ordinary burst of calls (the conformance suite makes about 170 in 2 s)."""


def protect(app: ASGIApp, *, host: str, lake: str | Path | None, keys_path: str | Path | None = None) -> tuple[ASGIApp, DenialLog]:
    """``app`` behind API keys; a ConfigError when ``host`` is beyond loopback and no key exists."""
    store = KeyStore(keys_path)
    check_bind(host, store, what="troupe mcp serve --http")

    def write(events: Sequence[Event]) -> Any:
        from troupe.runtime.eventlog.lake import LakeWriter, default_lake

        return LakeWriter(lake or default_lake()).write(events_to_columns(list(events)))

    denials = DenialLog(write)
    gate = KeyGate(app, AccessControl(store, limiter=RateLimiter(MCP_RATE)), denials, role=NEEDED_ROLE, interface="mcp",
                   action="troupe mcp serve", on_principal=remembering(denials))
    return gate, denials


__all__ = ["protect"]
