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
import json
import logging
import os
import sys
import tempfile
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


async def run_tools(url: str, scenario: str, cfg: McpServerConfig | None = None) -> int:
    manager = McpManager(elicitor=policy_elicitor("accept"), idle_close_s=None)
    cfg = cfg or server_config(url, scenario)
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


# ---- auth/* (OAuth: tools/mcp/oauth.py) ----
CIMD_URL = "https://conformance-test.local/client-metadata.json"
"""The client ID metadata document URL the suite's auth/basic-cimd scenario expects."""


def auth_config(scenario: str, context: dict[str, Any]) -> dict[str, Any]:
    """The ``auth:`` a team file would have for the scenario's server. Secrets from the suite's context go
    through environment variables, as a team's ``secrets:`` would name them (never into the config)."""
    def secret(key: str) -> str:
        os.environ[f"TROUPE_CONFORMANCE_{key.upper()}"] = str(context[key])
        return f"env:TROUPE_CONFORMANCE_{key.upper()}"

    if scenario.startswith("auth/client-credentials-"):
        key = "private_key_pem" if "private_key_pem" in context else "client_secret"
        return {"grant": "client_credentials", "client_id": context["client_id"],
                ("private_key" if key == "private_key_pem" else "client_secret"): secret(key),
                "signing_algorithm": context.get("signing_algorithm", "ES256")}
    if "idp_id_token" in context:
        return {"grant": "identity_assertion", "client_id": context["client_id"], "client_secret": secret("client_secret"),
                "idp_token_endpoint": context["idp_token_endpoint"], "idp_id_token": secret("idp_id_token"),
                "idp_client_id": context.get("idp_client_id")}
    if "client_id" in context:  # a pre-registered client
        return {"client_id": context["client_id"], "client_secret": secret("client_secret"), "login": "headless"}
    return {"client_metadata_url": CIMD_URL, "login": "headless"}


async def run_auth(url: str, scenario: str) -> int:
    """``auth/*`` scenarios: Troupe's manager against the suite's protected server, with ``auth:`` from the
    scenario's context; tokens go to a token store of this run's own (``TROUPE_HOME``)."""
    os.environ["TROUPE_HOME"] = tempfile.mkdtemp(prefix="troupe-conformance-")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    cfg = McpServerConfig(url=url, timeout_s=20.0, connect_timeout_s=20.0, auth=auth_config(scenario, context))
    try:
        return await run_tools(url, scenario, cfg)
    except Exception as e:  # noqa: BLE001 - the scenario may expect a refusal: say what Troupe said
        print(f"troupe: {e}", file=sys.stderr)
        return 1


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
