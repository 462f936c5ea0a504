"""A call in flight on an MCP connection: where its progress and sampling summaries go, and which
call a server's request belongs to."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from troupe.tools.mcp.models import CallerInfo

if TYPE_CHECKING:
    from troupe.tools.mcp.connection import McpConnection

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class CallState:
    """One call in flight on a connection: where its progress and sampling summaries go."""

    caller: CallerInfo | None = None
    on_progress: Callable[[dict[str, Any]], Any] | None = None
    """Called with each progress event; may be a coroutine function."""
    on_elicit: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    """Who answers this call's elicitation requests (the calling session, wherever it runs); ``None``: the
    manager's elicitor (:func:`troupe.tools.mcp.elicitation.asker_elicitor`)."""
    progress: list[dict[str, Any]] = field(default_factory=list)
    sampling: list[dict[str, Any]] = field(default_factory=list)
    elicitations: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    connection: McpConnection | None = None

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        event = {"progress": progress, "total": total, "message": message}
        self.progress.append(event)
        if self.on_progress is not None:
            try:
                outcome = self.on_progress(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 - an observer must not break the call
                logger.exception("on_progress callback failed")


CURRENT_CALL: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("troupe_mcp_call", default=None)
"""The call the current task is making (set by :meth:`~troupe.tools.mcp.connection.McpConnection.track`)."""


__all__ = ["CURRENT_CALL", "CallState"]
