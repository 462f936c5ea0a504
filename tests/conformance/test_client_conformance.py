"""The official MCP conformance suite's client scenarios against Troupe's MCP client (tests/conformance/
troupe_client.py drives tools/mcp's manager and connections). Parametrized from the suite's own ``list``,
so a scenario added to the suite cannot be missed; the ``auth/*`` ones are in test_client_auth_conformance.py.
Every scenario must pass: there is no expected-failures list."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support.conformance import NodeTools, install_node_tools, node_tools  # noqa: F401 - the fixture
from tests.support.mcp_install import _unavailable as unavailable

pytestmark = pytest.mark.conformance

HARNESS = Path(__file__).with_name("troupe_client.py")
SCENARIO_TIMEOUT_S = 60


@cache
def client_scenarios() -> tuple[str, ...]:
    """The client scenarios the installed suite lists (empty when the suite cannot be installed here;
    the fixture then skips or, under CI, fails)."""
    try:
        tools = install_node_tools()
    except Exception:  # noqa: BLE001 - reported by the node_tools fixture
        return ()
    out = subprocess.run(tools.command(tools.conformance, "list"), capture_output=True, text=True, timeout=60,
                         env=tools.env(), check=True).stdout
    section = out.split("Client scenarios", 1)[1] if "Client scenarios" in out else ""
    return tuple(line.strip()[2:].split(" ", 1)[0] for line in section.splitlines() if line.strip().startswith("- "))


def is_auth(scenario: str) -> bool:
    return scenario.startswith("auth/")


def run_client_scenario(tools: NodeTools, scenario: str, out_dir: Path) -> tuple[int, list[dict[str, object]], str]:
    """Run one scenario with the harness; returns the suite's exit code, its checks and its output."""
    command = f"{sys.executable} {HARNESS}"
    proc = subprocess.run(
        tools.command(tools.conformance, "client", "--command", command, "--scenario", scenario,
                      "-o", str(out_dir), "--timeout", str(SCENARIO_TIMEOUT_S * 1000)),
        capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S + 30, env=tools.env(),
        cwd=Path(__file__).parents[2],
    )
    checks: list[dict[str, object]] = []
    for path in out_dir.glob("**/checks.json"):  # auth/NAME: a folder per path part
        checks += json.loads(path.read_text())
    return proc.returncode, checks, proc.stdout + proc.stderr


def test_every_listed_client_scenario_is_covered() -> None:
    scenarios = client_scenarios()
    if not scenarios:
        unavailable("the MCP conformance suite", RuntimeError("it could not be installed or listed"))  # fails under CI
    assert {"initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"} <= set(scenarios)
    assert all(is_auth(s) or s in NON_AUTH for s in scenarios)


NON_AUTH = [s for s in client_scenarios() if not is_auth(s)] or ["initialize"]


@pytest.mark.parametrize("scenario", NON_AUTH)
def test_client_scenario(node_tools: NodeTools, scenario: str, tmp_path: Path) -> None:
    code, checks, output = run_client_scenario(node_tools, scenario, tmp_path)
    failed = [c for c in checks if c.get("status") in ("FAILURE", "WARNING")]
    assert code == 0 and not failed, f"{scenario}: exit {code}, failed checks {failed}\n{output[-3000:]}"
    assert any(c.get("status") == "SUCCESS" for c in checks), f"{scenario}: no check succeeded\n{output[-2000:]}"
