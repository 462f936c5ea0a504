"""Reflection (``planner.reflect``): after a plan finished, the planner's lessons become a ``reflection`` event
and an entry of the project's memory (the ``memory`` session service, :mod:`troupe.runtime.memory`), where a
later plan's turn recalls them.

The ``reflect`` tool lives here, apart from the plan tools: its effect (project memory) outlives the session,
so a replay answers it from the record, as it does the memory tools, while it runs the plan tools for real."""

from __future__ import annotations

import logging
from typing import Any, Final

from troupe.runtime.errors import ModelVisibleError, TroupeError
from troupe.runtime.events import ReflectionPayload
from troupe.runtime.ids import AgentId
from troupe.runtime.planning.model import Plan, PlanError, PlanStatus
from troupe.runtime.planning.ports import BlackboardPlans
from troupe.tools.context import ToolContext
from troupe.tools.spec import Tool, tool

MEMORY_SERVICE: Final = AgentId("memory")
"""The session's memory service (``troupe.runtime.ids.MEMORY``)."""
MAX_LESSONS: Final = 10
log = logging.getLogger(__name__)


def lessons_key(plan: Plan) -> str:
    """The memory key of a plan's lessons: one entry per plan (a revision of the reflection supersedes it)."""
    return f"planner-lessons/{plan.planner}/{plan.id}"


def lessons_text(plan: Plan, lessons: list[str]) -> str:
    return f"Lessons from plan '{plan.goal}' ({plan.status}): " + " ".join(f"({i}) {t}" for i, t in enumerate(lessons, 1))


async def remember_lessons(ctx: ToolContext, plan: Plan, lessons: list[str]) -> dict[str, Any] | None:
    """Write the lessons to the project's memory; None when the session has no memory service (or it refuses)."""
    try:
        entry = await ctx.services.call(MEMORY_SERVICE, "remember", agent=str(ctx.agent), key=lessons_key(plan),
                                        value=lessons_text(plan, lessons), scope="project", note="reflection")
    except TroupeError as e:  # no memory service in this session, or no project memory granted
        log.info("planner %s: lessons of %s not remembered: %s", ctx.agent, plan.id, e)
        return None
    return entry if isinstance(entry, dict) else None


async def reflect_on(ctx: ToolContext, plan: Plan, lessons: list[str]) -> str:
    """Record ``lessons`` about a finished ``plan``: a ``reflection`` event, and the project's memory."""
    if plan.status is PlanStatus.ACTIVE:
        raise PlanError(f"plan {plan.id} is still running; reflect once it is done or has failed")
    lessons = [" ".join(str(t).split()) for t in lessons if str(t).strip()][:MAX_LESSONS]
    if not lessons:
        raise ModelVisibleError("give at least one lesson (a short sentence each)")
    entry = await remember_lessons(ctx, plan, lessons)
    namespace = entry.get("namespace") if entry else None
    ctx.emit(ReflectionPayload(plan_id=plan.id, outcome=plan.status.value, lessons=lessons,
                               project=str(namespace) if namespace else None, remembered=entry is not None))
    where = f"the memory of project {namespace}" if namespace else "the session's events (no project memory here)"
    return f"{len(lessons)} lesson(s) recorded in {where}. Now answer with the outcome."


@tool(name="reflect", level="L1")
async def reflect(ctx: ToolContext, lessons: list[str], plan_id: str | None = None) -> str:
    """Record what you learned from your finished plan (kept in the project's memory for later plans).

    Args:
        lessons: One lesson each: what to do (or avoid) next time, concretely.
        plan_id: The plan (default: your latest).
    """
    plan = await BlackboardPlans(ctx).current(plan_id)
    return await reflect_on(ctx, plan, lessons)


REFLECT_TOOL: Tool = reflect.with_spec(source="builtin")

__all__ = ["MEMORY_SERVICE", "REFLECT_TOOL", "lessons_key", "lessons_text", "reflect", "reflect_on", "remember_lessons"]
