"""Live progress: each progress notification of an MCP call is a ``tool.progress`` event as it arrives (not
all of them after the tool returned), in process and on Ray (through the scheduler and the node's MCP actor)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import call
from tests.support.mcp_servers import stdio_config
from tests.tools.test_mcp_sessions import mcp_team, run
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query

SECONDS = 0.6
"""The test server's ``slow`` reports progress 4 times, SECONDS / 4 apart, then returns SECONDS / 4 later."""


def _timeline(lake: Path, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, epoch_ms(ts) ms, payload from events where session_id='{session_id}' and tool='own__slow' "
           "and type in ('tool.call','tool.progress','tool.result') order by ts, seq")
    return [{**r, **json.loads(r.pop("payload"))} for r in query(lake, sql).to_pylist()]


def _assert_live(lake: Path, session_id: str) -> None:
    events = _timeline(lake, session_id)
    assert [e["type"] for e in events] == ["tool.call", *["tool.progress"] * 4, "tool.result"]
    assert [e["progress"] for e in events[1:5]] == [1, 2, 3, 4]
    times = [e["ms"] for e in events]
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # progress to progress, the last one to the result
    step_ms = SECONDS / 4 * 1e3
    assert all(gap >= step_ms * 0.6 for gap in gaps), gaps  # spaced like the server's pauses, not written at once
    assert times[5] - times[1] >= SECONDS * 1e3 * 0.75 * 0.9


async def test_progress_events_arrive_while_the_call_runs_in_process(troupe: Troupe, lake: Path) -> None:
    cfg = mcp_team({"own": stdio_config()}, [{"id": "lead", "tools": ["own__slow"], "permissions": {"level": "L2"}}],
                   {"lead": [{"tool_calls": [call("own__slow", seconds=SECONDS)]}, {"text": "ok"}]})
    result = await run(troupe, cfg)
    _assert_live(lake, result.session_id)


@pytest.mark.ray
async def test_progress_events_arrive_while_the_call_runs_on_ray(troupe_ray: Troupe, lake: Path) -> None:
    cfg = mcp_team({"own": stdio_config()}, [{"id": "lead", "tools": ["own__slow"], "permissions": {"level": "L2"}}],
                   {"lead": [{"tool_calls": [call("own__slow", seconds=SECONDS)]}, {"text": "ok"}]})
    result = await run(troupe_ray, cfg)
    await troupe_ray.backend.log.flush.remote()  # type: ignore[attr-defined]
    _assert_live(lake, result.session_id)
