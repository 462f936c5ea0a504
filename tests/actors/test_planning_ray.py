"""A planner team on a real local Ray: the plan's steps run as tasks, a failed step is revised, and the plan
events reach the lake. Packed (the session on a pool host, as `troupe eval run` runs it, ~3-4 s) in every run;
dedicated (a host actor per agent and service, 10-17 s spawning six of them on 2 cores) marked ``slow``: the
only placement where the plan tools reach the task registry in another actor, and where the planner's polls
must leave no wait behind on it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.runtime.test_planning_session import PLANNING_TEAM, lake_events
from troupe.evals.planning_suite import overlapped
from troupe.runtime.api import Troupe
from troupe.runtime.config import load_team
from troupe.runtime.ids import TASKS
from troupe.runtime.planning.ports import TaskSteps
from troupe.runtime.session.handle import Session
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


class DriverTasks:
    """The session's task registry reached from the driver, through Ray as a planner in another actor does."""

    def __init__(self, troupe: Troupe, session: Session) -> None:
        self.troupe, self.session = troupe, session

    async def call(self, target: Any, method: str, /, **kwargs: Any) -> Any:
        return await self.troupe.backend.call(self.session.id, target, method, kwargs)


async def polls_leave_no_wait(troupe: Troupe, session: Session) -> int:
    """Three running steps polled by the planner's dispatcher; one finishes: the registry's waits after the poll."""
    tasks = DriverTasks(troupe, session)
    ids = [str((await tasks.call(TASKS, "create", goal=f"probe {n}", created_by="planner")).id) for n in range(3)]
    ctx = SimpleNamespace(services=tasks, agent="planner", task_id=None, taint=None, forget_notices=lambda ids: None)
    poll = asyncio.ensure_future(TaskSteps(ctx).wait_any(ids, timeout=60.0))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)  # its wait is on the registry
    await tasks.call(TASKS, "update", task_id=ids[0], by="probe", status="running")
    await tasks.call(TASKS, "update", task_id=ids[0], by="probe", status="done", output="ok")
    assert [o.task_id for o in await asyncio.wait_for(poll, 30)] == [ids[0]]
    await asyncio.sleep(0.3)  # (a leftover wait would still be there)
    waits: int = await tasks.call(TASKS, "pending_waits")
    return waits


async def replan(troupe: Troupe, lake: Path, placement: str, probe: bool = False) -> int:
    """Run the replanning case in ``placement``, check it, and return the task registry's pending waits after the
    plan (and, with ``probe``, after a poll of three steps of which one finished)."""
    session = await troupe.open(load_team(PLANNING_TEAM), placement=placement)
    try:
        result = await session.run("What is the total revenue of Q3 and Q4?", timeout=60)
        waits: int = await troupe.backend.call(session.id, TASKS, "pending_waits", {})
        board: dict[str, Any] = {e.key: e.value for e in await session.blackboard()}
        if probe:
            waits += await polls_leave_no_wait(troupe, session)
    finally:
        await session.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "400" in result.reply
    events = lake_events(lake)
    types = [e.type for e in events]
    assert types.count("plan.created") == 1 and types.count("plan.revised") == 1
    assert overlapped(events)
    assert board["plans/planner-1"]["status"] == "done"
    steps = {e.data["step_id"] for e in events if e.type == "plan.step" and e.data["to"] == "done"}
    assert steps == {"q4", "q3-backup", "total"}
    return waits


async def test_a_planner_replans_on_ray(troupe_ray: Troupe, lake: Path) -> None:
    assert await replan(troupe_ray, lake, "packed") == 0


@pytest.mark.slow
async def test_a_planner_replans_in_the_dedicated_placement(troupe_ray: Troupe, lake: Path) -> None:
    # the planner polls the registry's actor from another one: a poll leaves no wait there (a wait per step,
    # cancelled by the planner once one step finished, stayed until its step finished or timed out)
    assert await replan(troupe_ray, lake, "dedicated", probe=True) == 0
