"""The official MCP conformance suite's ``auth/*`` client scenarios against Troupe's MCP client with OAuth
(tools/mcp/oauth.py), through the same harness as the other client scenarios (tests/conformance/troupe_client.py:
Troupe's McpManager with ``McpServerConfig.auth`` made from the scenario's context). Parametrized from the
suite's own ``list``; every scenario must pass (no expected failures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.test_client_conformance import client_scenarios, is_auth, run_client_scenario
from tests.support.conformance import NodeTools, node_tools  # noqa: F401 - the fixture
from tests.support.mcp_install import _unavailable as unavailable

pytestmark = pytest.mark.conformance

AUTH = [s for s in client_scenarios() if is_auth(s)] or ["auth/metadata-default"]


def test_the_suite_lists_the_auth_scenarios() -> None:
    if not client_scenarios():
        unavailable("the MCP conformance suite", RuntimeError("it could not be installed or listed"))  # fails under CI
    assert {"auth/metadata-default", "auth/scope-step-up", "auth/pre-registration",
            "auth/client-credentials-basic", "auth/cross-app-access-complete-flow"} <= set(AUTH)


@pytest.mark.parametrize("scenario", AUTH)
def test_client_auth_scenario(node_tools: NodeTools, scenario: str, tmp_path: Path) -> None:
    code, checks, output = run_client_scenario(node_tools, scenario, tmp_path)
    failed = [c for c in checks if c.get("status") in ("FAILURE", "WARNING")]
    assert code == 0 and not failed, f"{scenario}: exit {code}, failed checks {failed}\n{output[-3000:]}"
    assert any(c.get("status") == "SUCCESS" for c in checks), f"{scenario}: no check succeeded\n{output[-2000:]}"
