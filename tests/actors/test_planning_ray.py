"""A planner team on a real local Ray (packed: the session on a pool host, as `troupe eval run` runs it): the
plan's steps run as tasks, a failed step is revised, and the plan events reach the lake.

One test, packed only, to keep CI short: the dedicated placement spends 10-17 s here spawning a host actor per
logical actor (six for this team) and adds no planning code path of its own beyond the task and blackboard calls
over Ray that tests/actors/test_sessions_ray.py covers; it passed by hand (docs/planning.md, "Limits")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.test_planning_session import run_planning
from troupe.evals.planning_suite import overlapped
from troupe.runtime.api import Troupe
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


async def test_a_planner_replans_on_ray(troupe_ray: Troupe, lake: Path) -> None:
    result, events, board = await run_planning(troupe_ray, lake, "What is the total revenue of Q3 and Q4?",
                                               placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "400" in result.reply
    types = [e.type for e in events]
    assert types.count("plan.created") == 1 and types.count("plan.revised") == 1
    assert overlapped(events)
    assert board["plans/planner-1"]["status"] == "done"
    steps = {e.data["step_id"] for e in events if e.type == "plan.step" and e.data["to"] == "done"}
    assert steps == {"q4", "q3-backup", "total"}
