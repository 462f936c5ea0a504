"""Payloads of a session's environment: opened before its first turn, its final state captured after its last."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class EnvironmentOpenedPayload(Payload):
    """The session's environment is ready (``status`` ``ok``), or its setup failed (``error``; the session fails)."""

    event_type: Literal["environment.opened"] = "environment.opened"
    sample_dir: str
    """The session's own folder (``${sample_dir}``)."""
    fixture: str | None = None
    """The folder copied into it, if any."""
    setup: str | None = None
    """The setup hook (``package.module:function``), if any."""
    servers: list[str] = Field(default_factory=list)
    """The team's MCP servers with ``scope: session`` (one process or connection per session)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """What the session is a sample of (``case_id``, ``sample``), when a sweep ran it."""
    error: str | None = None
    """Why the setup failed, if it did."""


class EnvironmentCapturedPayload(Payload):
    """The environment was torn down; ``final_state`` is what its teardown hook captured (graders read it)."""

    event_type: Literal["environment.captured"] = "environment.captured"
    sample_dir: str
    """The session's own folder (kept for graders unless the environment says ``keep_dir: false``)."""
    teardown: str | None = None
    """The teardown hook, if any."""
    final_state: dict[str, Any] | None = None
    """The state the environment ended in (``None``: no teardown hook, or it failed)."""
    error: str | None = None
    """Why the teardown failed, if it did."""


__all__ = ["EnvironmentCapturedPayload", "EnvironmentOpenedPayload"]
