"""A mail-like MCP server with a read tool and a write tool (``read_inbox``, ``send_email``), for the
per-tool policy tests: an agent may be granted the one and not the other.

    python -m tests.support.mail_mcp_server OUTBOX   (stdio)

``send_email`` appends a line to the ``OUTBOX`` file, so a test can tell whether the server ever saw the call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server: MCPServer = MCPServer("troupe-test-mail", version="1.0", log_level="WARNING")
OUTBOX = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("outbox.jsonl")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_inbox() -> str:
    """The messages in the inbox."""
    return "1 message: from ada@example.com, subject 'lunch?'"


@server.tool()
def send_email(to: str, body: str) -> str:
    """Send an email."""
    with OUTBOX.open("a") as out:
        out.write(json.dumps({"to": to, "body": body}) + "\n")
    return f"sent to {to}"


if __name__ == "__main__":
    server.run("stdio")
