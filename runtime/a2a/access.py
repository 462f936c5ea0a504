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
from starlette.types import ASGIApp

from troupe.runtime.access import AccessControl, DenialLog, KeyStore, Principal, Role
from troupe.runtime.access.asgi import KeyGate, Scope
from troupe.runtime.events import Event, events_to_columns

NEEDED_ROLE: Role = "user"
PUBLIC = frozenset({AGENT_CARD_WELL_KNOWN_PATH})


def _user(scope: Scope, who: Principal) -> None:
    scope["user"] = SimpleUser(who.user)  # the SDK's call context carries it: who answered an approval


def gate(app: ASGIApp, store: KeyStore, lake: str | Path) -> tuple[ASGIApp, DenialLog]:
    """``app`` behind the store's API keys; denials written to ``lake``."""

    def write(events: Sequence[Event]) -> Any:
        from troupe.runtime.eventlog.lake import LakeWriter

        return LakeWriter(lake).write(events_to_columns(list(events)))

    denials = DenialLog(write)
    return KeyGate(app, AccessControl(store), denials, role=NEEDED_ROLE, interface="a2a", action="troupe a2a serve",
                   public=PUBLIC, on_principal=_user), denials


__all__ = ["gate"]
