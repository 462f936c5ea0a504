"""An MCP server with one tool, ``echo``, for the per-call overhead figures of ``benchmarks/fanout.py``.

    python -m benchmarks.support.echo_mcp --stdio | --http PORT  [--marker TOKEN]

Streamable HTTP listens on 127.0.0.1, endpoint ``/mcp``. Built on the SDK's ``MCPServer``; nothing
is written to stdout in stdio mode. ``--marker`` is only there to be found in the command line (the
sweep benchmark counts the server processes still alive by it).
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server: MCPServer = MCPServer("troupe-bench-echo", version="1.0", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def echo(text: str) -> str:
    """Echo the text back."""
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true")
    mode.add_argument("--http", type=int, metavar="PORT")
    parser.add_argument("--marker")
    args = parser.parse_args()
    if args.stdio:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
