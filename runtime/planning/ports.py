"""The runner's ports wired to a session: steps run as tasks of the task registry, plans kept on the blackboard
(``plans/<id>``), both reached through a tool's :class:`~troupe.tools.context.ToolContext`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from troupe.runtime.ids import BLACKBOARD, TASKS
from troupe.runtime.planning.model import PLAN_KEY_PREFIX, Plan, PlanError, PlanStatus, PlanStep
from troupe.runtime.planning.runner import StepOutcome
from troupe.tools.builtins.tasks import read_tasks
from troupe.tools.context import ToolContext


def _status(task: Any) -> str:
    return str(getattr(task.status, "value", task.status))


class TaskSteps:
    """A :class:`~troupe.runtime.planning.runner.StepDispatcher` over the session's task registry."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx

    async def start(self, plan: Plan, step: PlanStep, task_id: str, goal: str, inputs: dict[str, Any]) -> str:
        task = await self.ctx.services.call(TASKS, "create", goal=goal, created_by=str(self.ctx.agent),
                                            assignee=step.assignee, task_id=task_id, input=inputs,
                                            parent_id=self.ctx.task_id)
        return str(task.id)

    async def wait_any(self, task_ids: Sequence[str], timeout: float) -> list[StepOutcome]:
        """One call of the task registry's ``wait_any`` per poll, which answers once a step's task is finished or
        ``timeout`` has passed: when this returns, nothing waits on for the planner in the registry's actor (a
        wait per step, cancelled here, went on there until the step timeout: cancelling an awaited Ray call
        does not stop it)."""
        tasks = await self.ctx.services.call(TASKS, "wait_any", task_ids=list(task_ids), timeout=max(0.0, timeout))
        read_tasks(self.ctx, tasks)  # risk scoring: a tainted worker's output taints the planner that reads it
        out = [StepOutcome(task_id=str(t.id), status=_status(t), output=t.output, error=t.error) for t in tasks]
        if out:  # the planner saw these outcomes here: no notice about them starts another turn
            self.ctx.forget_notices([o.task_id for o in out])
        return out

    async def cancel(self, task_id: str) -> None:
        with contextlib.suppress(Exception):  # already finished: nothing to cancel
            await self.ctx.services.call(TASKS, "cancel", task_id=task_id, by=str(self.ctx.agent))


class BlackboardPlans:
    """A :class:`~troupe.runtime.planning.runner.PlanStore` on the session's blackboard."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx

    async def save(self, plan: Plan) -> None:
        await self.ctx.services.call(BLACKBOARD, "put", key=plan.key, value=plan.model_dump(mode="json"),
                                     author=str(self.ctx.agent), kind="decision",
                                     provenance={"tool_call_id": self.ctx.tool_call_id})

    async def mine(self) -> list[Plan]:
        """This planner's plans, oldest first."""
        entries = await self.ctx.services.call(BLACKBOARD, "list", prefix=PLAN_KEY_PREFIX)
        plans = [Plan.model_validate(e.value) for e in entries if e is not None and isinstance(e.value, dict)]
        mine = [p for p in plans if p.planner == str(self.ctx.agent)]
        return sorted(mine, key=lambda p: _number(p.id))

    async def current(self, plan_id: str | None = None) -> Plan:
        """The plan ``plan_id`` (of this planner), or its latest one."""
        plans = await self.mine()
        if plan_id is not None:
            for p in plans:
                if p.id == plan_id:
                    return p
            raise PlanError(f"you have no plan {plan_id!r}; your plans: {', '.join(p.id for p in plans) or 'none'}")
        if not plans:
            raise PlanError("you have no plan yet; call make_plan first")
        return plans[-1]

    async def next_id(self) -> str:
        plans = await self.mine()
        return f"{self.ctx.agent}-{max((_number(p.id) for p in plans), default=0) + 1}"


def _number(plan_id: str) -> int:
    tail = plan_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def is_open(plan: Plan) -> bool:
    return plan.status is PlanStatus.ACTIVE


__all__ = ["BlackboardPlans", "TaskSteps", "is_open"]
