"""An MCP server's log messages (``notifications/message``): kept on the call they arrived during (they
become ``mcp.log`` events in the session's lake), or, outside any call, on the connection's recent log and
Python's logging. ``logging/setLevel`` is sent after connecting when the server's config has ``log_level``."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

from mcp import types as mt

MAX_DATA_CHARS = 2_000
"""A log message's data, as JSON, is cut to this many characters."""
MAX_LOGS_PER_CALL = 200
"""Log messages kept per call (the rest are counted, not kept)."""
RECENT_LOGS = 50
"""Log messages outside any call that a connection keeps (``McpManager.describe``)."""

_PY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR, "critical": logging.CRITICAL, "alert": logging.CRITICAL,
              "emergency": logging.CRITICAL}
logger = logging.getLogger("troupe.mcp.server_log")


def log_record(server: str, params: mt.LoggingMessageNotificationParams) -> dict[str, Any]:
    """``{"server", "level", "logger", "data"}``: what an ``mcp.log`` event carries (data bounded)."""
    data = params.data
    text = data if isinstance(data, str) else json.dumps(data, default=str, ensure_ascii=False)
    if len(text) > MAX_DATA_CHARS:
        data = text[:MAX_DATA_CHARS] + f"... [{len(text) - MAX_DATA_CHARS:,} more characters]"
    return {"server": server, "level": params.level, "logger": params.logger, "data": data}


def new_recent() -> deque[dict[str, Any]]:
    return deque(maxlen=RECENT_LOGS)


def to_python_log(record: dict[str, Any]) -> None:
    """Outside a call: to Python's logging (``troupe.mcp.server_log``) at the matching level."""
    logger.log(_PY_LEVELS.get(record["level"], logging.INFO), "MCP server %r%s: %s", record["server"],
               f" [{record['logger']}]" if record.get("logger") else "", record["data"])


__all__ = ["MAX_DATA_CHARS", "MAX_LOGS_PER_CALL", "RECENT_LOGS", "log_record", "new_recent", "to_python_log"]
