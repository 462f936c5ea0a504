"""The errors an MCP connection raises, worded for the model: what happened, and what happens next.

Messages never carry secrets: URLs lose their credentials and query string, and the server's
stderr is redacted.
"""

from __future__ import annotations

from typing import Any

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ToolExecutionError
from troupe.runtime.redact import redact_text
from troupe.tools.mcp.server_params import safe_url


class McpConnectionError(ToolExecutionError):
    """The MCP server could not be started or reached (model-visible: the call did not happen)."""


def describe_exc(e: BaseException) -> str:
    """One line for an exception, looking inside the exception groups anyio raises."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_exc(x) for x in e.exceptions[:3])
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if text != type(e).__name__ else text


def connect_error(server: str, cfg: McpServerConfig, why: str, stderr: str) -> McpConnectionError:
    """The server could not be started: what was started, why it failed, and how its stderr ends."""
    target = f"command {cfg.command!r}" if cfg.transport == "stdio" else f"url {safe_url(cfg.url)!r}"
    tail = redact_text(stderr)
    return McpConnectionError(
        f"MCP server {server!r} could not be started ({target}): {redact_text(why)}"
        + (f"; its stderr ends with: {tail[-300:]}" if tail else ""),
        server=server, stderr=tail,
    )


def disconnected_error(server: str, what: str, reason: str, stderr: str) -> ToolExecutionError:
    """The connection ended during ``what``; the next use opens a new one."""
    return ToolExecutionError(
        f"MCP server {server!r} disconnected during {what} ({reason}); "
        "it will be restarted on next use, so the call can be retried",
        server=server, reason=reason, stderr=redact_text(stderr),
    )


def failed_error(server: str, what: str, detail: str, **fields: Any) -> ToolExecutionError:
    """The server answered ``what`` with an error (the connection is still usable)."""
    return ToolExecutionError(f"MCP server {server!r} failed {what}: {detail}", server=server, **fields)


__all__ = ["McpConnectionError", "connect_error", "describe_exc", "disconnected_error", "failed_error"]
