"""A planner team in a whole session, in process: the plan on the blackboard, steps as tasks in parallel, a
failed step revised, the events in the lake (the same team as evals/suites/planning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from troupe.runtime.api import Troupe
from troupe.runtime.config import load_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event
from troupe.runtime.session.supervisor import SessionStatus

PLANNING_TEAM = REPO / "evals" / "suites" / "planning" / "team.yaml"


def lake_events(lake: Path) -> list[Event]:
    return [Event.model_validate(r) for r in query(lake, "select * from events order by ts, seq").to_pylist()]


async def run_planning(troupe: Troupe, lake: Path, text: str, **open_kw: Any) -> tuple[Any, list[Event], Any]:
    session = await troupe.open(load_team(PLANNING_TEAM), **open_kw)
    result = await session.run(text, timeout=60)
    board = {e.key: e.value for e in await session.blackboard()}
    await session.close()
    return result, lake_events(lake), board


async def test_a_failed_step_is_replanned_and_the_answer_is_right(troupe: Troupe, lake: Path) -> None:
    from troupe.evals.planning_suite import overlapped

    result, events, board = await run_planning(troupe, lake, "What is the total revenue of Q1 and Q2?")
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "350" in result.reply
    types = [e.type for e in events]
    assert types.count("plan.created") == 1 and types.count("plan.revised") == 1
    revised = next(e for e in events if e.type == "plan.revised").data
    assert revised["version"] == 2 and revised["removed"] == ["q1"] and [s["id"] for s in revised["added"]] == ["q1-backup"]
    failed = [e.data for e in events if e.type == "plan.step" and e.data["to"] == "failed"]
    assert failed[0]["step_id"] == "q1" and "archive is offline" in failed[0]["error"]
    assert overlapped(events)
    plan = board["plans/planner-1"]
    assert plan["status"] == "done" and plan["version"] == 2
    assert {s["id"]: s["status"] for s in plan["steps"]} == {"q2": "done", "total": "done", "q1-backup": "done"}
    tasks = [e for e in events if e.type == "task.created"]
    assert {e.task_id for e in tasks} >= {"planner-1.q1.1", "planner-1.q2.1", "planner-1.total.1"}
    # the planner saw the outcomes in its tool: no notice about them started another turn
    assert sum(1 for e in events if e.type == "llm.request" and e.agent == "planner") == 3


async def test_no_revision_left_ends_with_the_failure_reported(troupe: Troupe, lake: Path) -> None:
    team = load_team(PLANNING_TEAM)
    team.agents[0].planner.max_replans = 0
    session = await troupe.open(team)
    result = await session.run("What is the total revenue of Q1 and Q2?", timeout=60)
    await session.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "could not finish the plan" in result.reply and "FAILED" in result.reply
    events = lake_events(lake)
    assert not any(e.type == "plan.revised" for e in events)
    skipped = {e.data["step_id"] for e in events if e.type == "plan.step" and e.data["to"] == "skipped"}
    assert skipped == {"total"}


def test_a_planner_gets_the_planning_tools_and_the_guide() -> None:
    from troupe.runtime.agent.core import system_prompt
    from troupe.runtime.planning.tools import planning_tools

    team = load_team(PLANNING_TEAM)
    planner, worker = team.agents[0], team.agents[1]
    assert set(planning_tools(planner)) == {"make_plan", "revise_plan", "continue_plan"}
    assert planning_tools(worker) == {}
    planner.planner.reflect = True
    assert "reflect" in planning_tools(planner)
    assert "call make_plan once" in system_prompt(planner, team.agents)
    assert "make_plan" not in system_prompt(worker, team.agents)


BAD: dict[str, Any] = {}
SEEN: list[str] = []


def invalid_plan_model(request: Any, agent: str) -> Any:
    """Plans one step with ``BAD``'s fields, then gives up, keeping what the tool said."""
    import json

    from troupe.runtime.llm.types import LLMResponse, ToolCall

    tool_msgs = [m.content or "" for m in request.messages if m.role == "tool"]
    if not tool_msgs:
        step = {"id": "a", "description": "x", "assignee": "analyst", **BAD}
        return LLMResponse(tool_calls=[ToolCall(id="c1", name="make_plan", arguments=json.dumps({"goal": "g", "steps": [step]}))])
    SEEN.append(tool_msgs[-1])
    return "gave up"


@pytest.mark.parametrize("bad,message", [
    ({"assignee": "ghost"}, "unknown assignee 'ghost'"),
    ({"depends_on": ["q9"]}, "depends on unknown step 'q9'"),
])
async def test_an_invalid_plan_is_a_tool_error_the_model_reads(troupe: Troupe, bad: dict[str, Any], message: str) -> None:
    BAD.clear(), BAD.update(bad), SEEN.clear()
    team = load_team(PLANNING_TEAM)
    team.models["scripted"].function = "tests.runtime.test_planning_session:invalid_plan_model"
    session = await troupe.open(team)
    result = await session.run("go", timeout=30)
    await session.close()
    assert result.reply == "gave up"
    assert message in SEEN[0] and "Fix these and call the tool again" in SEEN[0]


MODEL_CALLS: list[str] = []


def counted_model(request: Any, agent: str) -> Any:
    from troupe.evals.planning_suite import respond

    MODEL_CALLS.append(agent)
    return respond(request, agent)


async def test_a_replay_runs_the_plan_tools_for_real_and_answers_reflect_from_the_record(troupe: Troupe, lake: Path) -> None:
    """The plan tools make tasks and write the blackboard (session services): a replay runs them, like the task
    tools, so the workers' recorded turns get their tasks; ``reflect`` writes project memory: answered from the record."""
    from troupe.runtime.agent.recorded import is_service_tool
    from troupe.runtime.planning.tools import PLANNING_TOOLS, REFLECT_TOOL
    from troupe.runtime.replay.compare import steps
    from troupe.runtime.replay.record import read_rows

    assert all(is_service_tool(t) for t in PLANNING_TOOLS) and not is_service_tool(REFLECT_TOOL)
    team = load_team(PLANNING_TEAM)
    team.models["scripted"].function = "tests.runtime.test_planning_session:counted_model"
    MODEL_CALLS.clear()
    result = await troupe.run(team, "What is the total revenue of Q1 and Q2?", timeout=60)
    assert "350" in result.reply
    made = len(MODEL_CALLS)
    report = await troupe.replay(result.session_id)
    assert report.identical, report.summary()
    assert report.reply == result.reply
    replayed = [e for e in lake_events(lake) if e.session_id == report.session_id]
    assert {e.task_id for e in replayed if e.type == "task.created"} == {
        "planner-1.q1.1", "planner-1.q2.1", "planner-1.q1-backup.1", "planner-1.total.1"}
    assert [e.type for e in replayed if e.type.startswith("plan.")].count("plan.revised") == 1
    assert len(MODEL_CALLS) == made  # every answer came from the record

    def keyed(session_id: str) -> dict[str, list[Any]]:
        return {a: [(s.type, s.key) for s in ss] for a, ss in steps(read_rows(lake, session_id)).items()}

    assert keyed(result.session_id) == keyed(report.session_id)
