"""The MCP conformance suite's client under test: Troupe's own MCP client (``troupe.tools.mcp``: the
manager and its connections), driven per scenario.

The suite runs ``<python> tests/conformance/troupe_client.py <url>`` with ``MCP_CONFORMANCE_SCENARIO`` set
(the scenario's URL is the last argument). Every scenario goes through :class:`McpManager` exactly as a
session's tool calls do: list the server's tools, call each with arguments made from its schema. Elicitation
is answered by an :class:`~troupe.tools.mcp.elicitation.Elicitor` policy that accepts with the form's defaults.

``auth/*`` scenarios: handled by :func:`run_auth` (OAuth, tools/mcp/oauth.py; tests in
tests/conformance/test_client_auth_conformance.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from troupe.runtime.config import McpServerConfig
from troupe.tools.mcp import McpManager
from troupe.tools.mcp.elicitation import policy_elicitor

SERVER = "conformance"
logger = logging.getLogger("troupe_client")


def sample_value(schema: dict[str, Any], name: str, index: int) -> Any:
    """A plausible argument value for one property (the suite's tools check types, not values)."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind in ("number", "integer"):
        return index + 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return f"{name}-value"


def sample_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    props = parameters.get("properties") or {}
    return {name: sample_value(sub if isinstance(sub, dict) else {}, name, i) for i, (name, sub) in enumerate(props.items())}


def server_config(url: str, scenario: str) -> McpServerConfig:
    """The config a team file would have for this server (plus what the scenario needs)."""
    return McpServerConfig(url=url, timeout_s=20.0, connect_timeout_s=20.0)


async def run_tools(url: str, scenario: str) -> int:
    manager = McpManager(elicitor=policy_elicitor("accept"), idle_close_s=None)
    cfg = server_config(url, scenario)
    try:
        specs = await manager.list_tools(SERVER, cfg)
        for spec in specs:
            tool = spec.origin_name or spec.name
            if spec.source != f"mcp:{SERVER}":
                continue
            result = await manager.call(SERVER, cfg, tool, sample_arguments(spec.parameters))
            logger.info("%s -> %s%s (elicitations: %s)", tool, "error: " if result.is_error else "", result.text[:200],
                        result.elicitations)
    finally:
        await manager.close()
    return 0


async def run_auth(url: str, scenario: str) -> int:
    """``auth/*`` scenarios (the OAuth helper's part: tools/mcp/oauth.py)."""
    raise SystemExit(f"scenario {scenario!r}: OAuth is not handled by this harness yet")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    if len(argv) < 2:
        print("usage: troupe_client.py [...] URL (MCP_CONFORMANCE_SCENARIO set)", file=sys.stderr)
        return 2
    url, scenario = argv[-1], os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if scenario.startswith("auth/"):
        return asyncio.run(run_auth(url, scenario))
    return asyncio.run(run_tools(url, scenario))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
