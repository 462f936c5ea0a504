"""Small team builders for session tests."""

from __future__ import annotations

from typing import Any

from troupe.runtime.config import TeamConfig, parse_team


def team(agents: list[dict[str, Any]], *, scripts: dict[str, list[dict[str, Any]]] | None = None,
         entry: str | None = None, budgets: dict[str, Any] | None = None, function: str | None = None,
         **extra: Any) -> TeamConfig:
    """A team whose agents all use one scripted (or function) profile called ``m``."""
    profile: dict[str, Any] = {"provider": "scripted", "scripts": scripts or {}}
    if function:
        profile = {"provider": "function", "function": function}
    return parse_team({
        "name": "t", "entry": entry or agents[0]["id"], "default_model": "m", "models": {"m": profile},
        "agents": agents, "budgets": budgets or {}, **extra,
    })


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}
