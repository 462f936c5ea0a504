"""The tools a ``kind: planner`` agent gets: it writes a typed plan (``make_plan``), the runtime runs it as
tasks and reports back where the model must look; the model revises it (``revise_plan``), lets it go on
after a review (``continue_plan``) and, with ``planner.reflect``, writes its lessons (``reflect``)."""

from __future__ import annotations

from troupe.runtime.config import AgentSpec
from troupe.runtime.planning.model import Plan, PlanStatus, PlanStep, StepDraft, check_steps
from troupe.runtime.planning.ports import BlackboardPlans, TaskSteps
from troupe.runtime.planning.reflection import REFLECT_TOOL, reflect
from troupe.runtime.planning.report import report_text
from troupe.runtime.planning.revise import revise
from troupe.runtime.planning.runner import PlanRunner, RunReport, Stop
from troupe.tools.context import ToolContext
from troupe.tools.spec import Tool, tool

PLAN_TOOL_TIMEOUT_S = 86_400.0
"""A plan runs inside the tool call; each step is bounded by ``planner.step_timeout_s`` instead."""


def _runner(ctx: ToolContext) -> PlanRunner:
    return PlanRunner(ctx.spec.planner, TaskSteps(ctx), BlackboardPlans(ctx), emit=ctx.emit)


def _members(ctx: ToolContext) -> list[str]:
    return [str(m) for m in ctx.services.members()]


@tool(name="make_plan", level="L1", timeout_s=PLAN_TOOL_TIMEOUT_S)
async def make_plan(ctx: ToolContext, goal: str, steps: list[StepDraft], rationale: str = "") -> str:
    """Write a plan and run it: each step becomes a task for its assignee as soon as the steps it depends on are
    done (independent steps run in parallel). Returns when the plan is done, a step failed, or a review step is done.

    Args:
        goal: What the plan achieves (the request, in one sentence).
        steps: The steps: {"id", "description", "assignee", "depends_on": [step ids], "review": false}.
        rationale: Why this plan.
    """
    check_steps(steps, _members(ctx), planner=str(ctx.agent))
    store = BlackboardPlans(ctx)
    runner = _runner(ctx)
    note = ""
    mine = await store.mine()
    if mine and mine[-1].status is PlanStatus.ACTIVE:  # a new plan supersedes an unfinished one
        await runner.give_up(mine[-1])
        note = f"(Your unfinished plan {mine[-1].id} was abandoned.)\n"
    plan = Plan(id=await store.next_id(), goal=goal, planner=str(ctx.agent), rationale=rationale,
                steps=[PlanStep(**s.model_dump()) for s in steps], task_id=ctx.task_id)
    await runner.create(plan)
    return note + report_text(await runner.run(plan), ctx.spec.planner)


@tool(name="revise_plan", level="L1", timeout_s=PLAN_TOOL_TIMEOUT_S)
async def revise_plan(ctx: ToolContext, reason: str, steps: list[StepDraft], contradicts: list[str] | None = None,
                      rationale: str = "", plan_id: str | None = None) -> str:
    """Revise your plan after a step failed, or because a done step's result contradicts it, then run it on.
    Done and running steps are kept; ``steps`` are the steps still to do (a failed step's id retries it).

    Args:
        reason: Why the plan changes (what failed or contradicts it).
        steps: The steps still to do, as in make_plan; they may depend on done steps.
        contradicts: Ids of done steps whose result contradicts the plan (they are redone: list them in steps).
        rationale: Why the new plan.
        plan_id: The plan (default: your latest).
    """
    store = BlackboardPlans(ctx)
    runner = _runner(ctx)
    plan = await store.current(plan_id)
    plan, _ = revise(runner, plan, steps, reason=reason, members=_members(ctx), contradicts=contradicts or [],
                     rationale=rationale)
    await store.save(plan)
    return report_text(await runner.run(plan), ctx.spec.planner)


@tool(name="continue_plan", level="L1", timeout_s=PLAN_TOOL_TIMEOUT_S)
async def continue_plan(ctx: ToolContext, plan_id: str | None = None) -> str:
    """Let your plan run on (after reviewing a step's result, or to see where it stands).

    Args:
        plan_id: The plan (default: your latest).
    """
    plan = await BlackboardPlans(ctx).current(plan_id)
    runner = _runner(ctx)
    if plan.status is not PlanStatus.ACTIVE:
        stop = Stop.DONE if plan.status is PlanStatus.DONE else Stop.GAVE_UP
        return report_text(RunReport(plan, stop), ctx.spec.planner)
    return report_text(await runner.run(plan), ctx.spec.planner)


PLANNING_TOOLS: list[Tool] = [t.with_spec(source="builtin") for t in (make_plan, revise_plan, continue_plan)]
"""Tools on the session's own services (tasks, blackboard): a replay runs them for real, like the task tools
(``troupe.runtime.agent.recorded.SERVICE_TOOL_MODULES`` names this module). ``reflect`` lives elsewhere
(:mod:`troupe.runtime.planning.reflection`): it writes the project's memory, which outlives the session."""


def planning_tools(spec: AgentSpec) -> dict[str, Tool]:
    """The tools a ``kind: planner`` agent gets besides its own (none for other kinds)."""
    if spec.kind != "planner":
        return {}
    tools = [*PLANNING_TOOLS, *([REFLECT_TOOL] if spec.planner.reflect else [])]
    return {t.name: t for t in tools}


__all__ = ["PLANNING_TOOLS", "REFLECT_TOOL", "continue_plan", "make_plan", "planning_tools", "reflect", "revise_plan"]
