"""The stateful MCP server of the environment tests lives with the benchmarks' fixtures
(``benchmarks/support/state_mcp_server.py``); the tests import it from here or from there."""

from benchmarks.support.state_mcp_server import command, main

__all__ = ["command", "main"]
