"""What one sandboxed call is allowed: its workspace, network, limits and extra mounts.

A :class:`SandboxRequest` crosses processes (an agent's host to a Ray task), so it is a pydantic
model built from the caller's :class:`~troupe.tools.context.ToolContext`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from troupe.runtime.safety import SandboxConfig

if TYPE_CHECKING:
    from troupe.tools.context import ToolContext

NETWORK_SCOPE = "network:external"
"""The scope that lets a sandboxed call reach the network (without it only its own ``lo`` exists)."""


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """Whether ``granted`` covers ``needed``: the exact scope, ``prefix:*`` or ``*`` (the guardrails' rule)."""
    return any(g in (needed, "*") or (g.endswith(":*") and needed.startswith(g[:-1])) for g in granted)


class SandboxRequest(BaseModel):
    """One call's sandbox: where it works and what it may reach."""

    config: SandboxConfig = Field(default_factory=SandboxConfig)
    workspace: str
    """The session's workspace (a real path): mounted read-write at its own path, the working directory."""
    network: bool = False
    """Share the host's network (the agent holds ``network:external``)."""
    timeout_s: float | None = None
    """Kill everything after this many seconds (the caller's own timeout usually fires first)."""
    hidden_env: list[str] = Field(default_factory=list)
    """Environment variables the sandbox must not see (where the team's secrets are read from), besides
    the secret-looking names that are always left out."""

    @classmethod
    def for_context(cls, ctx: ToolContext, workspace: str, *, timeout_s: float | None = None) -> SandboxRequest:
        """The calling agent's sandbox; its skill folders (``skills:``) are mounted read-only, so their scripts run."""
        config = ctx.sandbox
        skills = [os.path.realpath(s) for s in ctx.spec.skills if os.path.realpath(s) not in config.read_only]
        if skills:
            config = config.model_copy(update={"read_only": [*config.read_only, *skills]})
        return cls(config=config, workspace=workspace, timeout_s=timeout_s,
                   network=has_scope(ctx.spec.permissions.scopes, NETWORK_SCOPE),
                   hidden_env=sorted(ref.env for ref in ctx.secrets.values() if ref.env))


__all__ = ["NETWORK_SCOPE", "SandboxRequest", "has_scope"]
