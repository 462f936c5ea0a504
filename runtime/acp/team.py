"""What ``session/new`` changes in the team: the client's ``cwd`` and its MCP servers.

- ``cwd`` becomes the workspace root (``workspace.root``: each session works in ``<cwd>/.troupe/workspaces/<session
  id>``), unless the team file sets ``workspace.root`` or ``workspace.repo`` itself. (A session's workspace is
  always a folder of its own; with ``workspace.repo`` it is a git worktree on a branch of its own.)
- The client's MCP servers (stdio and HTTP; SSE is not a transport Troupe speaks, so it is refused) join the
  team's ``mcpServers`` under their names, and the entry agent may call their tools (``<name>__*``). A name the
  team already uses keeps the team's server.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from troupe.runtime.config import TeamConfig
from troupe.runtime.mcp_config import McpServerConfig

log = logging.getLogger("troupe.acp")


def _server_name(name: str) -> str:
    """A server name the team file would accept: letters, digits, ``-`` and ``_``, no ``__``."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]", "_", name)).strip("_") or "client"


def mcp_server(server: Any) -> McpServerConfig | None:
    """A client's ``mcpServers`` entry as Troupe's config (None: a transport Troupe does not speak)."""
    kind = getattr(server, "type", None)
    if kind == "http":
        return McpServerConfig(type="http", url=server.url, headers={h.name: h.value for h in server.headers})
    if kind is None and getattr(server, "command", None):
        return McpServerConfig(command=server.command, args=list(server.args),
                               env={e.name: e.value for e in server.env})
    return None


def adapt_team(team: TeamConfig, cwd: str, servers: list[Any] | None) -> TeamConfig:
    """``team`` for one ACP session opened in ``cwd`` with the client's MCP ``servers``."""
    update: dict[str, Any] = {}
    if team.workspace.root is None and team.workspace.repo is None:
        root = Path(cwd).expanduser().resolve() / ".troupe" / "workspaces"
        update["workspace"] = team.workspace.model_copy(update={"root": str(root)})
    added: dict[str, McpServerConfig] = {}
    for server in servers or []:
        name = _server_name(server.name)
        config = mcp_server(server)
        if config is None:
            log.warning("MCP server %r from the client is skipped: Troupe speaks stdio and HTTP, not %s",
                        server.name, getattr(server, "type", "?"))
            continue
        if name in team.mcp_servers:
            log.warning("MCP server %r from the client is skipped: the team has a server of that name", name)
            continue
        added[name] = config
    if added:
        update["mcp_servers"] = {**team.mcp_servers, **added}
        agents = [a.model_copy(update={"tools": [*a.tools, *(f"{n}__*" for n in added)]}) if a.id == team.entry else a
                  for a in team.agents]
        update["agents"] = agents
    return team.model_copy(update=update) if update else team


__all__ = ["adapt_team", "mcp_server"]
