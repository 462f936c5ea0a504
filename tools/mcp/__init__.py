"""MCP client layer: connections to MCP servers, their tools as Troupe tools, and sampling.

Plain Python (no Ray): the runtime runs one :class:`McpManager` per node and routes calls to it.
"""

from troupe.tools.mcp.content import MAX_TEXT_CHARS
from troupe.tools.mcp.errors import McpConnectionError
from troupe.tools.mcp.manager import McpManager, default_manager
from troupe.tools.mcp.models import SEPARATOR, CallerInfo, McpCallResult, model_tool_name, split_tool_name
from troupe.tools.mcp.sampling import Sampler, llm_sampler
from troupe.tools.mcp.specs import PSEUDO_TOOLS
from troupe.tools.mcp.tools import McpTool, mcp_tools

__all__ = [
    "MAX_TEXT_CHARS",
    "PSEUDO_TOOLS",
    "SEPARATOR",
    "CallerInfo",
    "McpCallResult",
    "McpConnectionError",
    "McpManager",
    "McpTool",
    "Sampler",
    "default_manager",
    "llm_sampler",
    "mcp_tools",
    "model_tool_name",
    "split_tool_name",
]
