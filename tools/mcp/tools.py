"""An MCP server's tools as callable Troupe tools: :class:`McpTool` runs each call on this process's
:func:`~troupe.tools.mcp.manager.default_manager` (the specs come from :mod:`~troupe.tools.mcp.specs`)."""

from __future__ import annotations

from typing import Any

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ToolExecutionError
from troupe.tools.mcp.manager import default_manager
from troupe.tools.mcp.models import McpCallResult, model_tool_name
from troupe.tools.mcp.policy import is_disabled
from troupe.tools.schema_tool import SchemaTool
from troupe.tools.spec import Tool, ToolSpec


class McpInvoker:
    """The function behind an :class:`McpTool`: a plain picklable object (server, config, remote
    name) that runs the call on this process's :func:`~troupe.tools.mcp.manager.default_manager`."""

    def __init__(self, server: str, cfg: McpServerConfig, remote_name: str) -> None:
        self.server = server
        self.cfg = cfg
        self.remote_name = remote_name

    async def __call__(self, **arguments: Any) -> McpCallResult:
        result = await default_manager().call(self.server, self.cfg, self.remote_name, arguments)
        if result.is_error:
            raise ToolExecutionError(result.text, server=self.server, tool=self.remote_name)
        return result


class McpTool(SchemaTool):
    """A tool served by an MCP server; arguments are checked against the server's JSON schema."""

    def __init__(self, spec: ToolSpec, server: str, cfg: McpServerConfig, remote_name: str) -> None:
        super().__init__(McpInvoker(server, cfg, remote_name), spec)
        self.server = server
        self.cfg = cfg
        self.remote_name = remote_name

    @property
    def disabled(self) -> bool:
        """Its ``tools`` entry says ``disabled``: hidden from agents, and a call to it is refused (``not_granted``)."""
        return is_disabled(self.cfg, self.remote_name)

    def with_spec(self, **changes: Any) -> McpTool:
        return McpTool(self.spec.model_copy(update=changes), self.server, self.cfg, self.remote_name)

    def __repr__(self) -> str:
        return f"McpTool({self.name!r})"


def mcp_tools(server: str, cfg: McpServerConfig, specs: list[ToolSpec]) -> list[Tool]:
    """Callable tools for specs from :meth:`McpManager.list_tools` (which may have run elsewhere)."""
    prefix = model_tool_name(server, "")
    out: list[Tool] = []
    for spec in specs:
        if not spec.name.startswith(prefix) or len(spec.name) == len(prefix):
            raise ValueError(f"tool spec {spec.name!r} does not belong to MCP server {server!r}")
        out.append(McpTool(spec, server, cfg, spec.origin_name or spec.name[len(prefix):]))
    return out


__all__ = ["McpInvoker", "McpTool", "mcp_tools"]
