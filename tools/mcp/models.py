"""What crosses processes around an MCP call: who asked, and what came back.

Plain pydantic models: a call may be made by an agent in one process and served by the node's
MCP actor in another, so nothing here holds a connection or SDK object.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

SEPARATOR = "__"
"""The model sees an MCP tool as ``f"{server}{SEPARATOR}{tool}"``: unique across servers, and
made only of characters every provider accepts in a function name (when the server's are)."""


MAX_NAME = 64
"""OpenAI-compatible endpoints accept function names of ``[a-zA-Z0-9_-]{1,64}``."""


def model_tool_name(server: str, tool: str) -> str:
    """The model-visible name of ``server``'s tool ``tool``: other characters become ``_``, and a
    name too long is cut and given a hash of the original, so it stays unique."""
    import hashlib
    import re

    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}{SEPARATOR}{tool}")
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 9]}_{hashlib.sha1(tool.encode()).hexdigest()[:8]}"
    return name


def split_tool_name(name: str) -> tuple[str, str]:
    """``(server, tool)`` from a model-visible name: the server part ends at the first separator,
    so a server name must not contain it (a tool name may)."""
    server, sep, tool = name.partition(SEPARATOR)
    if not sep or not server or not tool:
        raise ValueError(f"{name!r} is not an MCP tool name of the form 'server{SEPARATOR}tool'")
    return server, tool


class CallerInfo(BaseModel):
    """Who makes a call: attributes progress events and the server's sampling requests to an agent."""

    session_id: str = ""
    run_id: str = ""
    agent: str = ""
    call_id: str = ""
    sampling_profile: str | None = None
    """The model profile the runtime would use to answer sampling for this caller."""
    workspace: str = ""
    """The calling session's workspace folder, offered to the server as a root (``roots/list``)."""


class McpCallResult(BaseModel):
    """One tool call's outcome, rendered for the model, with small summaries for the event log."""

    text: str
    """What the model reads."""
    is_error: bool = False
    """The server reported a tool error; the caller turns it into a model-visible error."""
    structured: dict[str, Any] | None = None
    """The result's ``structured_content`` (a non-object value is wrapped as ``{"result": value}``)."""
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    """One summary per content block (type, mime type, sizes; never the base64 payload)."""
    progress: list[dict[str, Any]] = Field(default_factory=list)
    """Progress notifications received during the call: ``{"progress", "total", "message"}``."""
    sampling: list[dict[str, Any]] = Field(default_factory=list)
    """One summary per sampling request answered during the call:
    ``{"model", "tokens_in", "tokens_out", "ok", ...}``."""
    elicitations: list[dict[str, Any]] = Field(default_factory=list)
    """One summary per elicitation request answered during the call (``server``, ``mode``, ``message``,
    ``action``, ``by``, ...; never the answer's values)."""
    logs: list[dict[str, Any]] = Field(default_factory=list)
    """The server's log messages during the call: ``{"server", "level", "logger", "data"}``."""
    subscription: dict[str, Any] | None = None
    """A ``subscribe_resource`` / ``unsubscribe_resource`` call's outcome: ``{"server", "uri", "action",
    "changed"}`` (an ``mcp.subscription`` event)."""

    def __str__(self) -> str:
        return self.text


__all__ = ["SEPARATOR", "CallerInfo", "McpCallResult", "model_tool_name", "split_tool_name"]
