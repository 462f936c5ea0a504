"""``planner.reflect`` against the real memory service (local placement): a planner finishes its plan, its
lessons are a ``reflection`` event and an entry of the project's memory, and a later session of the same
project recalls them at the start of the planner's turn (and plans around the offline archive at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.runtime.test_planning_session import PLANNING_TEAM, lake_events
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig, load_team
from troupe.runtime.session.supervisor import SessionStatus

SEEN: list[Any] = []
"""The planner's requests (``recording_model``)."""


def recording_model(request: Any, agent: str) -> Any:
    """The planning suite's model, keeping the planner's requests."""
    from troupe.evals.planning_suite import respond

    if agent == "planner":
        SEEN.append(request)
    return respond(request, agent)


def reflecting_team(project: str = "planning-suite") -> TeamConfig:
    team = load_team(PLANNING_TEAM)
    team.project = project
    team.agents[0].planner.reflect = True
    team.models["scripted"].function = "tests.runtime.test_planning_memory:recording_model"
    return team


async def test_lessons_reach_project_memory_and_a_later_session_recalls_them(troupe: Troupe, lake: Path) -> None:
    SEEN.clear()
    first = await troupe.open(reflecting_team())
    result = await first.run("What is the total revenue of Q1 and Q2?", timeout=60)
    await first.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "350" in result.reply
    events = lake_events(lake)
    reflection = [e for e in events if e.type == "reflection"]
    assert len(reflection) == 1, [e.type for e in events]
    assert reflection[0].data["remembered"] is True and reflection[0].data["project"] == "planning-suite"
    assert reflection[0].data["outcome"] == "done" and "backup table" in reflection[0].data["lessons"][0]
    written = [e for e in events if e.type == "memory.written"]
    assert [e.data["key"] for e in written] == ["planner-lessons/planner/planner-1"]
    assert written[0].data["scope"] == "project"

    SEEN.clear()
    second = await troupe.open(reflecting_team())
    result = await second.run("What is the total revenue of Q1 and Q3?", timeout=60)
    await second.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "325" in result.reply
    later = [e for e in lake_events(lake) if e.session_id == second.id]
    recalled = [e for e in later if e.type == "memory.recalled" and e.agent == "planner"]
    assert recalled and recalled[0].data["source"] == "turn"
    assert written[0].data["entry_id"] in recalled[0].data["entry_ids"]
    memory = [m for m in SEEN[0].messages if m.name == "memory"]
    assert memory and "look revenue up in the analyst's backup table" in (memory[0].content or "")
    # the lesson was used: the first plan already sends the look-up to the backup, so nothing fails
    assert not any(e.type == "plan.revised" for e in later)
    assert not any(e.type == "plan.step" and e.data["to"] == "failed" for e in later)
    # both look-ups went to the analyst: one at a time, each with its own result (not one reply for both)
    done = {e.data["step_id"]: e.data["result"] for e in later if e.type == "plan.step" and e.data["to"] == "done"}
    assert done == {"q1": "Q1 revenue: 150", "q3": "Q3 revenue: 175", "total": "325"}


async def test_another_projects_session_does_not_recall_the_lessons(troupe: Troupe, lake: Path) -> None:
    SEEN.clear()
    first = await troupe.open(reflecting_team("alpha"))
    assert (await first.run("What is the total revenue of Q1 and Q2?", timeout=60)).status is SessionStatus.COMPLETED
    await first.close()
    SEEN.clear()
    other = await troupe.open(reflecting_team("beta"))
    result = await other.run("What is the total revenue of Q1 and Q2?", timeout=60)
    await other.close()
    assert "350" in result.reply
    assert not any(m.name == "memory" for m in SEEN[0].messages)
    later = [e for e in lake_events(lake) if e.session_id == other.id]
    assert any(e.type == "plan.revised" for e in later)  # it had to learn again
