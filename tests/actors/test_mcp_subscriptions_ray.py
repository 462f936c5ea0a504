"""Resource subscriptions on the session-wide Ray: the connection lives in the node's MCP actor, and each update of
a subscribed resource is routed back to the subscribing agent's host (a notice in its mailbox, an
``mcp.resource_updated`` event); closing the session unsubscribes at the server (server-everything, stdio)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.conformance import NodeTools, node_tools  # noqa: F401 - the fixture
from tests.tools.test_mcp_subscriptions_tasks import DOC_A, notices, rows, subscribed_session
from troupe.actors.transport import remote_call
from troupe.runtime.api import Troupe

pytestmark = [pytest.mark.ray, pytest.mark.conformance, pytest.mark.usefixtures("ray_session")]


async def test_an_update_reaches_the_subscribed_agent_through_its_host(troupe_ray: Troupe, lake: Path,
                                                                       node_tools: NodeTools) -> None:
    session_id, session = await subscribed_session(troupe_ray, node_tools)
    await session.close()
    await troupe_ray.backend.flush()  # type: ignore[attr-defined]
    assert notices(lake, session_id) == [("lead", DOC_A)]
    updated = rows(lake, f"select agent, status, payload from events where session_id='{session_id}' "
                         "and type='mcp.resource_updated'")
    assert updated and {(e["agent"], e["uri"], e["status"]) for e in updated} == {("lead", DOC_A, "delivered")}
    mcp = await remote_call(troupe_ray.backend.scheduler.mcp_actor.remote(None))  # type: ignore[attr-defined]
    described = await remote_call(mcp.describe.remote())
    logs = " ".join(str(r["data"]) for r in described["servers"]["ev"]["recent_logs"])
    assert f"Received Unsubscribe Resource request: {DOC_A}" in logs, logs
