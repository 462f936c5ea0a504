"""The permission check every tool call passes before it runs."""

from __future__ import annotations

from runtime.config import AgentSpec, PermissionLevel
from runtime.errors import PermissionDeniedError
from tools.spec import ToolSpec

_ORDER = list(PermissionLevel)


def _has_scope(granted: list[str], needed: str) -> bool:
    for g in granted:
        if g == needed or g == "*" or (g.endswith(":*") and needed.startswith(g[:-1])):
            return True
    return False


def check_permission(agent: AgentSpec, tool: ToolSpec) -> None:
    """Raise a model-visible :class:`PermissionDeniedError` if ``agent`` may not call ``tool``."""
    have = agent.permissions.level
    if _ORDER.index(have) < _ORDER.index(tool.level):
        raise PermissionDeniedError(
            f"permission denied: tool {tool.name!r} needs level {tool.level} and agent {agent.id!r} has {have}",
            tool=tool.name,
            reason="level",
        )
    missing = [s for s in tool.scopes if not _has_scope(agent.permissions.scopes, s)]
    if missing:
        raise PermissionDeniedError(
            f"permission denied: tool {tool.name!r} needs scope(s) {missing} that agent {agent.id!r} was not granted",
            tool=tool.name,
            reason="scope",
        )


__all__ = ["check_permission"]
