"""The runner's ports wired to a session: steps run as tasks of the task registry, plans kept on the blackboard
(``plans/<id>``), both reached through a tool's :class:`~troupe.tools.context.ToolContext`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from troupe.runtime.ids import BLACKBOARD, TASKS
from troupe.runtime.planning.model import PLAN_KEY_PREFIX, Plan, PlanError, PlanStatus, PlanStep
from troupe.runtime.planning.runner import StepOutcome
from troupe.tools.builtins.tasks import read_tasks
from troupe.tools.context import ToolContext

_TERMINAL = ("done", "failed", "cancelled")


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

    async def _finished(self, task_ids: Sequence[str]) -> list[StepOutcome]:
        wanted = set(task_ids)
        tasks = [t for t in await self.ctx.services.call(TASKS, "list")
                 if str(t.id) in wanted and _status(t) in _TERMINAL]
        read_tasks(self.ctx, tasks)  # risk scoring: a tainted worker's output taints the planner that reads it
        out = [StepOutcome(task_id=str(t.id), status=_status(t), output=t.output, error=t.error) for t in tasks]
        if out:  # the planner saw these outcomes here: no notice about them starts another turn
            self.ctx.forget_notices([o.task_id for o in out])
        return out

    async def wait_any(self, task_ids: Sequence[str], timeout: float) -> list[StepOutcome]:
        finished = await self._finished(task_ids)
        if finished or timeout <= 0:
            return finished
        waits = [asyncio.ensure_future(self.ctx.services.call(TASKS, "wait", task_ids=[t], timeout=timeout))
                 for t in task_ids]
        try:
            await asyncio.wait(waits, timeout=timeout + 1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)
        return await self._finished(task_ids)

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
