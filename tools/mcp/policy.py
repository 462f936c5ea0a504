"""Per-tool policy of an MCP server (``mcpServers.<name>.tools``): which entry applies to a tool, and
what it comes to once the server's own settings fill in what the entry leaves unset.

An entry is keyed by a tool's own name (``send_email``) or an ``fnmatch`` pattern (``send_*``, ``*``).
The exact name wins; otherwise the longest matching pattern (ties: the first in the file). The same
resolution serves the specs the model and the guardrails see (:mod:`troupe.tools.mcp.specs`) and the
manager's own timeout and refusal of disabled tools (:mod:`troupe.tools.mcp.manager`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from troupe.runtime.config import McpServerConfig, PermissionLevel
from troupe.runtime.mcp_config import McpToolPolicy

_PATTERN_CHARS = frozenset("*?[")


def is_pattern(key: str) -> bool:
    return any(c in _PATTERN_CHARS for c in key)


def policy_entry(cfg: McpServerConfig, tool: str) -> McpToolPolicy | None:
    """The ``tools`` entry that applies to ``tool``: its exact name, else the longest matching pattern."""
    if not cfg.tools:
        return None
    exact = cfg.tools.get(tool)
    if exact is not None and not is_pattern(tool):
        return exact
    best: tuple[int, McpToolPolicy] | None = None
    for key, entry in cfg.tools.items():
        if is_pattern(key) and fnmatch.fnmatchcase(tool, key) and (best is None or len(key) > best[0]):
            best = (len(key), entry)
    if best is not None:
        return best[1]
    return exact  # a tool whose own name looks like a pattern, listed by that name


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """What applies to one tool once the server's settings fill in what its entry leaves unset."""

    level: PermissionLevel
    scopes: tuple[str, ...]
    needs_approval: bool
    timeout_s: float
    idempotent: bool
    max_concurrency: int | None
    disabled: bool


def server_needs_approval(cfg: McpServerConfig, tool: str) -> bool:
    """The server-wide setting: ``true`` for all its tools, or a list of tool names."""
    return cfg.needs_approval is True or (isinstance(cfg.needs_approval, list) and tool in cfg.needs_approval)


def effective_policy(cfg: McpServerConfig, tool: str, *, idempotent_hint: bool = False) -> EffectivePolicy:
    """``tool``'s policy; ``idempotent_hint``: what the server's annotations say (read-only or idempotent),
    used unless the entry sets ``idempotent``."""
    entry = policy_entry(cfg, tool)
    if entry is None:
        return EffectivePolicy(cfg.level, tuple(cfg.scopes), server_needs_approval(cfg, tool), cfg.timeout_s,
                               idempotent_hint, None, False)
    return EffectivePolicy(
        level=entry.level if entry.level is not None else cfg.level,
        scopes=tuple(entry.scopes if entry.scopes is not None else cfg.scopes),
        needs_approval=entry.needs_approval if entry.needs_approval is not None else server_needs_approval(cfg, tool),
        timeout_s=entry.timeout_s if entry.timeout_s is not None else cfg.timeout_s,
        idempotent=entry.idempotent if entry.idempotent is not None else idempotent_hint,
        max_concurrency=entry.max_concurrency,
        disabled=entry.disabled,
    )


def tool_timeout_s(cfg: McpServerConfig, tool: str) -> float:
    entry = policy_entry(cfg, tool)
    return entry.timeout_s if entry is not None and entry.timeout_s is not None else cfg.timeout_s


def is_disabled(cfg: McpServerConfig, tool: str) -> bool:
    entry = policy_entry(cfg, tool)
    return entry is not None and entry.disabled


__all__ = ["EffectivePolicy", "effective_policy", "is_disabled", "is_pattern", "policy_entry",
           "server_needs_approval", "tool_timeout_s"]
