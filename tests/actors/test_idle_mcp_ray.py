"""On Ray, a sweep's end closes the idle node-scoped MCP connections of every node's MCP actor (through
the scheduler): no server process waits out ``idle_close_s`` after the sweep."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.evals.test_sweep_idle_mcp import alive, suite
from tests.support.state_mcp_server import command
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


async def test_a_sweep_on_ray_leaves_no_node_scoped_server_alive(troupe_ray: Troupe, tmp_path: Path) -> None:
    marker = f"idleray-{uuid.uuid4().hex[:8]}"
    progress = await Sweep(troupe_ray, load_suite(suite(tmp_path / "s", command("--marker", marker), 8)),
                           concurrency=8).run()
    assert progress.passed == 8
    assert alive(marker) == 0, "the sweep's idle node-scoped server outlived it"
    assert await troupe_ray.close_idle_mcp() == 0
