"""``troupe mcp serve``: Troupe as an MCP server, so any MCP client can run teams, drive sessions,
read their shared state and query the event lake.

* :mod:`troupe.runtime.mcp_server.core` - the runtime and the open sessions (plain Python, no MCP);
* :mod:`troupe.runtime.mcp_server.teams` - which team files a client may run;
* :mod:`troupe.runtime.mcp_server.lake_query` - read-only, sandboxed SQL over the lake;
* :mod:`troupe.runtime.mcp_server.tools` - the MCP tools over the core;
* :mod:`troupe.runtime.mcp_server.serve` - stdio and streamable-HTTP startup, signals, logging;
* :mod:`troupe.runtime.mcp_server.cli` - the ``troupe mcp serve`` command line.
"""

from troupe.runtime.mcp_server.core import ServiceError, ServiceOptions, TroupeService

__all__ = ["ServiceError", "ServiceOptions", "TroupeService"]
