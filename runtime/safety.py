"""The team file's safety sections: the workspace and its history, the sandbox, risk scoring and secrets.

Each is a block of the team file (``workspace:``, ``sandbox:``, ``risk:``, ``secrets:``); the runtime
pieces that act on them live in ``troupe.tools.sandbox`` (sandboxed execution),
``troupe.runtime.storage.snapshots`` and ``troupe.runtime.session.workspace_history`` (snapshots and
rollback), ``troupe.runtime.agent.risk`` (scores and taint) and ``troupe.runtime.secrets``.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@functools.lru_cache(maxsize=64)
def _resolved_root(root: str) -> Path:
    """``root`` made absolute (cached: every agent of every session asks, and resolving walks the disk)."""
    return Path(root).expanduser().resolve()


class WorkspaceConfig(_Strict):
    """Each session gets a folder of its own, ``<root>/<session id>``, for the file and shell tools: a
    plain folder, or a git worktree of ``repo`` on a branch of its own. Its history (snapshots at turn
    boundaries and before writes, rollback) is kept in the lake's storage."""

    root: str | None = None
    """Default: ``$TROUPE_WORKSPACES`` or ``~/.troupe/workspaces``."""
    shell_timeout_s: float = Field(default=30.0, gt=0)
    shell_output_chars: int = Field(default=8_000, ge=100)
    repo: str | None = None
    """A git repository (path, relative to the team file or absolute): each session's workspace is a
    worktree of it, on the branch ``<branch_prefix><session id>`` made from ``ref``."""
    ref: str = "HEAD"
    """What a session's branch starts from (a branch, tag or commit of ``repo``)."""
    branch_prefix: str = Field(default="troupe/", pattern=r"^[A-Za-z0-9._/-]*$")
    snapshots: bool = True
    """Snapshot the workspace at turn boundaries and before any L2+ write (content-addressed, deduplicated)."""

    def path_for(self, session_id: str) -> Path:
        """This session's folder (not created here: the tools create it on first use)."""
        return _resolved_root(self.root or os.environ.get("TROUPE_WORKSPACES") or "~/.troupe/workspaces") / str(session_id)


class SandboxConfig(_Strict):
    """How ``shell`` and the cpu tools that opt in (``@tool(sandbox=True)``) run: inside Linux
    namespaces (bubblewrap) with the workspace read-write, the system read-only, no network unless the
    agent holds ``network:external``, and process and memory limits. When the sandbox cannot be made,
    those tools refuse to run; ``sandbox: off`` in the team file runs them unsandboxed, on purpose."""

    enabled: bool = True
    memory_mb: int = Field(default=2048, ge=16)
    """Address-space / memory limit of everything the command starts."""
    max_processes: int = Field(default=256, ge=1)
    """Processes (and threads) the command may have at once: a fork bomb stops there."""
    read_only: list[str] = Field(default_factory=list)
    """Extra host paths mounted read-only (a virtualenv, a data folder); the system folders always are."""
    read_write: list[str] = Field(default_factory=list)
    """Extra host paths mounted read-write besides the workspace (rarely wanted)."""

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, data: Any) -> Any:
        # ``sandbox: off`` reads as False in YAML 1.1; ``on``/``true`` as True.
        if isinstance(data, bool):
            return {"enabled": data}
        if isinstance(data, str):
            if data.lower() in ("off", "false", "no"):
                return {"enabled": False}
            if data.lower() in ("on", "true", "yes"):
                return {"enabled": True}
            raise ValueError(f"sandbox is 'on', 'off' or a mapping (memory_mb, max_processes, ...), not {data!r}")
        return data


class UntrustedSources(_Strict):
    """Where untrusted content comes from: a tool result from any of these taints the agent that read it."""

    tools: list[str] = Field(default_factory=list)
    """Tool names (``web_fetch``, ``mail__read_inbox``); a trailing ``*`` matches a prefix."""
    servers: list[str] = Field(default_factory=list)
    """MCP server names: every tool of the server."""
    scopes: list[str] = Field(default_factory=list)
    """Tools holding any of these scopes (``network:external``, ``email:read``)."""


class RiskConfig(_Strict):
    """Risk scoring: every tool call gets a score from 0 to 100 with its reasons (in its ``tool.call``
    event). At ``ask_at`` or above it needs the user's approval; at ``deny_at`` or above it is refused
    (``guardrail.denied`` with reason ``risk``). Without thresholds calls are scored and recorded only."""

    enabled: bool = True
    ask_at: int | None = Field(default=None, ge=0, le=100)
    deny_at: int | None = Field(default=None, ge=0, le=100)
    untrusted: UntrustedSources = Field(default_factory=UntrustedSources)
    risky_commands: list[str] = Field(default_factory=list)
    """Extra regular expressions for shell commands that raise a call's score (added to the built-in ones)."""
    amount_over: float | None = Field(default=None, ge=0)
    """An argument named like an amount above this raises the score."""

    @model_validator(mode="after")
    def _ordered(self) -> RiskConfig:
        if self.ask_at is not None and self.deny_at is not None and self.ask_at > self.deny_at:
            raise ValueError(f"risk.ask_at ({self.ask_at}) must not be above risk.deny_at ({self.deny_at})")
        for pattern in self.risky_commands:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"risk.risky_commands: {pattern!r} is not a regular expression ({e})") from None
        return self


class SecretRef(_Strict):
    """Where a secret's value is read, on the node that uses it: an environment variable or a file.
    Tools ask for it by name (``ctx.secret("NAME")``, ``${secret:NAME}`` in an MCP server's env or
    headers); the model never sees it and it never reaches the lake, checkpoints or logs."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if isinstance(data, str):  # "env:VAR" or "file:/path"
            kind, sep, value = data.partition(":")
            if not sep or kind not in ("env", "file") or not value:
                raise ValueError(f"a secret is 'env:VARIABLE', 'file:/path' or a mapping with env or file, not {data!r}")
            return {kind: value}
        return data

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret names exactly one of 'env' (an environment variable) or 'file' (a path)")
        return self


__all__ = ["RiskConfig", "SandboxConfig", "SecretRef", "UntrustedSources", "WorkspaceConfig"]
