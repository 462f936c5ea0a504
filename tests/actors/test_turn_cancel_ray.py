"""Cancelling one turn of a conversation on the session-wide Ray, in both placements: the tool call in flight
stops (closed in the lake), the agent is idle, and the same session's next turn has the cancelled one in context."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.turn_cancel_team import cancel_team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_a_cancelled_turn_stops_its_tool_and_the_session_goes_on(troupe_ray: Troupe, tmp_path: Path,
                                                                       placement: str) -> None:
    session = await troupe_ray.open(cancel_team(), placement=placement, conversation=True)
    await session.send(f"wait in {tmp_path}")
    for _ in range(1500):
        if (tmp_path / "slow.start").exists():
            break
        await asyncio.sleep(0.02)
    done = await session.cancel_turn("stop")
    assert (done.turn, done.cancelled) == (1, True)
    assert (await session.describe("a"))["state"] == "idle"
    for _ in range(500):  # the tool runs in a Ray worker: its cancellation lands there
        if (tmp_path / "slow.cancelled").exists():
            break
        await asyncio.sleep(0.02)
    assert (tmp_path / "slow.cancelled").exists() and not (tmp_path / "slow.done").exists()
    await session.send("what did I ask first?")
    second = await session.result(timeout=60)
    assert (second.status, second.reply) == (SessionStatus.RUNNING, f"first: wait in {tmp_path} | stopped: 1 | noted: True")
    await session.end()
    await session.close()
    await troupe_ray.backend.flush()
    rows = query(troupe_ray.lake, f"select type, status, turn from events where session_id = '{session.id}' and type in "
                                  "('tool.call', 'tool.error', 'turn.cancelled', 'turn.finished') order by ts").to_pylist()
    assert sorted((r["type"], r["status"], r["turn"]) for r in rows) == sorted([
        ("tool.call", None, 1), ("tool.error", "cancelled", 1), ("turn.cancelled", "cancelled", 1), ("turn.finished", "ok", 2)])
