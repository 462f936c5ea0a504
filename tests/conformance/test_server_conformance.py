"""The official MCP conformance suite's server scenarios against ``troupe mcp serve --http --conformance``:
one test per scenario (parametrized from the suite's own ``list``, so a scenario added to the suite cannot
be missed) against one ``--local`` server for the module, then the whole suite once (``--suite all``)
against one server on the session-wide Ray. Every scenario must pass: there is no expected-failures list.

Two checks of ``server-sse-polling`` may say WARNING, never FAILURE: that scenario POSTs its call with an
``mcp-protocol-version: 2025-03-26`` header, and the SDK's transport sends the priming event (id, empty
data, ``retry``) only to clients of 2025-11-25 or later, which cannot be told apart from older ones on that
request. tests/conformance/test_mcp_sse_resume.py checks the priming event, ``retry`` and ``Last-Event-ID``
replay with the 2025-11-25 header over real HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.support.conformance import NodeTools, install_node_tools, node_tools  # noqa: F401 - the fixture
from tests.support.mcp_install import _unavailable as unavailable
from tests.support.mcp_servers import free_port

pytestmark = pytest.mark.conformance

REPO = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "troupe.runtime.cli.main", "mcp", "serve", "--conformance"]
ENV = {"RAY_AUTH_MODE": "disabled", "TROUPE_BLOCK_REMOTE_MODELS": "1"}
SCENARIO_TIMEOUT_S = 60
OLD_HEADER_WARNINGS = {("server-sse-polling", "server-sse-priming-event"), ("server-sse-polling", "server-sse-retry-field")}
"""The only warnings allowed (see the module docstring); any other warning fails the test."""


@cache
def server_scenarios() -> tuple[str, ...]:
    """The server scenarios the installed suite lists (empty when it cannot be installed here; the fixture
    then skips or, under CI, fails)."""
    try:
        tools = install_node_tools()
    except Exception:  # noqa: BLE001 - reported by the node_tools fixture
        return ()
    out = subprocess.run(tools.command(tools.conformance, "list", "--server"), capture_output=True, text=True,
                         timeout=60, env=tools.env(), check=True).stdout
    return tuple(line.strip()[2:].split(" ", 1)[0] for line in out.splitlines() if line.strip().startswith("- "))


def start_server(tmp: Path, *where: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``troupe mcp serve --http`` on a free port, once it answers; returns it, its URL and its log."""
    port = free_port()
    log = tmp / "server.log"
    (tmp / "teams").mkdir(exist_ok=True)
    with open(log, "wb") as err:
        proc = subprocess.Popen([*SERVER, "--http", str(port), *where, "--teams-dir", str(tmp / "teams"),
                                 "--lake", str(tmp / "lake")], cwd=REPO, env={**os.environ, **ENV},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 90
    import httpx

    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            # a GET without a session: 400 once the server (and the runtime under it) is up
            if httpx.get(url, headers={"Accept": "text/event-stream"}, timeout=2).status_code < 500:
                return proc, url, log
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the server did not start: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_suite(tools: NodeTools, url: str, out_dir: Path, *selection: str) -> tuple[int, dict[str, list[dict]], str]:
    """Run the suite (``--scenario NAME`` or ``--suite all``); returns its exit code, the checks of each
    scenario it ran and its output."""
    proc = subprocess.run(tools.command(tools.conformance, "server", "--url", url, *selection, "-o", str(out_dir)),
                          capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S * 6, env=tools.env(), cwd=REPO)
    checks: dict[str, list[dict]] = {}
    for path in sorted(out_dir.glob("server-*/checks.json")):
        scenario = next(s for s in sorted(server_scenarios(), key=len, reverse=True)
                        if path.parent.name.startswith(f"server-{s}-"))
        checks.setdefault(scenario, []).extend(json.loads(path.read_text()))
    return proc.returncode, checks, proc.stdout + proc.stderr


def problems(scenario: str, checks: list[dict]) -> list[dict]:
    """The checks that failed, and the warnings that are not the two explained ones."""
    return [c for c in checks if c.get("status") == "FAILURE"
            or (c.get("status") == "WARNING" and (scenario, c.get("id")) not in OLD_HEADER_WARNINGS)]


@pytest.fixture(scope="module")
def local_server(node_tools: NodeTools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url, log = start_server(tmp_path_factory.mktemp("mcp-serve-local"), "--local")
    try:
        yield url
    finally:
        stop_server(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_every_listed_server_scenario_is_covered() -> None:
    scenarios = server_scenarios()
    if not scenarios:
        unavailable("the MCP conformance suite", RuntimeError("it could not be installed or listed"))  # fails under CI
    assert len(scenarios) >= 32 and {"server-initialize", "dns-rebinding-protection", "server-sse-polling"} <= set(
        scenarios)
    assert list(SCENARIOS) == list(scenarios)


SCENARIOS = server_scenarios() or ("server-initialize",)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_scenario(node_tools: NodeTools, local_server: str, scenario: str, tmp_path: Path) -> None:
    code, checks, output = run_suite(node_tools, local_server, tmp_path, "--scenario", scenario)
    assert set(checks) == {scenario}, output[-3000:]
    bad = problems(scenario, checks[scenario])
    assert code == 0 and not bad, f"{scenario}: exit {code}, checks {bad}\n{output[-3000:]}"
    if scenario == "server-sse-polling":  # its checks are all SHOULDs (see the module docstring): the call's result came
        closed = [c for c in checks[scenario] if c.get("id") == "stream-closed"]
        assert closed and closed[0]["details"]["receivedToolResponse"] is True, output[-3000:]
        return
    assert any(c.get("status") == "SUCCESS" for c in checks[scenario]), f"{scenario}: no check succeeded\n{output}"


@pytest.mark.ray
@pytest.mark.slow
def test_whole_suite_on_ray(node_tools: NodeTools, ray_session: None, tmp_path: Path) -> None:
    """One server on the session-wide Ray (``--address``), the whole suite once."""
    import ray

    proc, url, log = start_server(tmp_path, "--address", ray.get_runtime_context().gcs_address)
    try:
        code, checks, output = run_suite(node_tools, url, tmp_path / "out", "--suite", "all")
    finally:
        stop_server(proc)
    assert set(checks) == set(server_scenarios()), output[-3000:]
    bad = {s: problems(s, c) for s, c in checks.items() if problems(s, c)}
    assert code == 0 and not bad, f"exit {code}, {bad}\n{output[-3000:]}"
    assert proc.returncode == 0, log.read_text()[-3000:]
