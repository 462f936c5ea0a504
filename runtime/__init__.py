"""Troupe's core: the public names are re-exported here (imported lazily, so actors stay light).

    from troupe.runtime import Troupe, load_team
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Troupe": "troupe.runtime.api",
    "Session": "troupe.runtime.session.handle",
    "SessionResult": "troupe.runtime.session.supervisor",
    "SessionStatus": "troupe.runtime.session.supervisor",
    "TeamConfig": "troupe.runtime.config",
    "AgentSpec": "troupe.runtime.config",
    "ModelProfile": "troupe.runtime.config",
    "Placement": "troupe.runtime.config",
    "load_team": "troupe.runtime.config",
    "Event": "troupe.runtime.events",
    "query": "troupe.runtime.eventlog.lake",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605  (lazy re-exports, resolved by __getattr__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
