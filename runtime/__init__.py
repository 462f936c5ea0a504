"""Troupe's core: the public names are re-exported here (imported lazily, so actors stay light).

    from runtime import Troupe, load_team
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Troupe": "runtime.api",
    "Session": "runtime.session",
    "SessionResult": "runtime.supervisor",
    "SessionStatus": "runtime.supervisor",
    "TeamConfig": "runtime.config",
    "AgentSpec": "runtime.config",
    "ModelProfile": "runtime.config",
    "Placement": "runtime.config",
    "load_team": "runtime.config",
    "Event": "runtime.events",
    "query": "runtime.lake",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
