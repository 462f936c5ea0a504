"""Running a plan: dispatch every step whose dependencies are done (up to ``max_parallel`` at once), observe
their tasks, mark the steps, and stop where the planner model must look: a step failed (or timed out), a
step it asked to review is done, or the plan is finished.

Plain Python: the tasks are reached through a :class:`StepDispatcher` and the plan is kept by a
:class:`PlanStore` (the tools wire both to the session's task registry and blackboard; tests use fakes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

from troupe.runtime.capabilities import PlannerSettings
from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.events import Emitter, PlanCreatedPayload, PlanStepPayload, null_emitter
from troupe.runtime.planning.model import Plan, PlanStatus, PlanStep, StepStatus

RESULT_PREVIEW: Final = 2048
"""Characters of a step's result (as JSON text) copied into a ``plan.step`` event."""


@dataclass(frozen=True)
class StepOutcome:
    """A finished task, as the runner needs it."""

    task_id: str
    status: str
    """``done``, ``failed`` or ``cancelled``."""
    output: Any = None
    error: str | None = None


class StepDispatcher(Protocol):
    """Where a plan's steps run (the session's task registry, or a fake)."""

    async def start(self, plan: Plan, step: PlanStep, task_id: str, goal: str, inputs: dict[str, Any]) -> str:
        """Create the step's task (id ``task_id``) for ``step.assignee``; returns the task id."""
        ...

    async def wait_any(self, task_ids: Sequence[str], timeout: float) -> list[StepOutcome]:
        """The tasks among ``task_ids`` that are finished, waiting up to ``timeout`` s for one (``[]``: none yet)."""
        ...

    async def cancel(self, task_id: str) -> None: ...


class PlanStore(Protocol):
    async def save(self, plan: Plan) -> None:
        """Write the plan (the blackboard's ``plans/<id>``)."""
        ...


class Stop(StrEnum):
    """Why :meth:`PlanRunner.run` returned."""

    DONE = "done"
    """Every step is done."""
    REVISE = "revise"
    """A step failed: the planner must revise the plan."""
    REVIEW = "review"
    """A step marked ``review`` is done: the planner looks before its dependents start."""
    GAVE_UP = "gave_up"
    """A step failed and no revision is left: the plan failed."""


@dataclass
class RunReport:
    plan: Plan
    stop: Stop
    failed: list[str] = field(default_factory=list)
    """Steps that failed in this run."""
    reviewed: list[str] = field(default_factory=list)
    """Review steps done in this run."""


def task_id_for(plan: Plan, step: PlanStep) -> str:
    """The task of a step's attempt: ``<plan>.<step>.<attempt>`` (one per dispatch, stable across a replay)."""
    return f"{plan.id}.{step.id}.{step.attempt}"


def step_goal(plan: Plan, step: PlanStep) -> tuple[str, dict[str, Any]]:
    """The task goal (the step's description, with its dependencies' results) and its input."""
    inputs = {d: plan.step(d).result for d in step.depends_on}
    goal = step.description
    if inputs:
        lines = [f"- {d}: {_text(v)}" for d, v in inputs.items()]
        goal += "\n\nResults of the steps this one depends on:\n" + "\n".join(lines)
    return goal, {"context": plan.goal, "plan": plan.id, "step": step.id, "inputs": inputs}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def revisions_left(plan: Plan, settings: PlannerSettings) -> int:
    return max(0, settings.max_replans - (plan.version - 1))


class PlanRunner:
    """Drives one plan; every change is saved and emitted (``plan.created``, ``plan.step``)."""

    def __init__(self, settings: PlannerSettings, dispatcher: StepDispatcher, store: PlanStore, *,
                 emit: Emitter = null_emitter, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = store
        self.emit = emit
        self.clock = clock

    async def create(self, plan: Plan) -> Plan:
        await self.store.save(plan)
        self.emit(PlanCreatedPayload(plan_id=plan.id, goal=plan.goal, version=plan.version,
                                      steps=[s.draft() for s in plan.steps], rationale=plan.rationale))
        return plan

    def mark(self, plan: Plan, step: PlanStep, to: StepStatus, **changes: Any) -> Plan:
        """``plan`` with ``step`` moved to ``to`` (and ``changes``), the move emitted as ``plan.step``."""
        updated = step.model_copy(update={"status": to, **changes})
        preview = updated.result
        if preview is not None and len(text := _text(preview)) > RESULT_PREVIEW:
            preview = text[:RESULT_PREVIEW] + "…"
        self.emit(PlanStepPayload(plan_id=plan.id, version=plan.version, step_id=step.id, from_=step.status.value,
                                   to=to.value, assignee=step.assignee, step_task_id=updated.task_id,
                                   attempt=updated.attempt, result=preview, error=updated.error),
                   status=to.value)
        return plan.replace(updated)

    async def run(self, plan: Plan) -> RunReport:
        """Run until the planner must look (see :class:`Stop`); the plan is saved after every change."""
        while True:
            plan = await self._dispatch_ready(plan)
            running = plan.by_status(StepStatus.RUNNING)
            if not running:
                if all(s.status is StepStatus.DONE for s in plan.steps):
                    plan = plan.model_copy(update={"status": PlanStatus.DONE})
                    await self.store.save(plan)
                    return RunReport(plan, Stop.DONE)
                return await self._needs_revision(plan, [s.id for s in plan.by_status(StepStatus.FAILED)])
            now = self.clock.now().timestamp()
            deadline = min(self._deadline(s) for s in running)
            outcomes = await self.dispatcher.wait_any([str(s.task_id) for s in running], max(0.0, deadline - now))
            plan, failed, reviewed = await self._observe(plan, running, outcomes)
            await self.store.save(plan)
            if failed:
                return await self._needs_revision(plan, failed)
            if reviewed:
                return RunReport(plan, Stop.REVIEW, reviewed=reviewed)

    def _deadline(self, step: PlanStep) -> float:
        started = step.started_at.timestamp() if step.started_at is not None else self.clock.now().timestamp()
        return started + self.settings.step_timeout_s

    async def _dispatch_ready(self, plan: Plan) -> Plan:
        """Start the ready steps, up to ``max_parallel`` running, one at a time per assignee: an agent takes the
        tasks waiting in its mailbox in one turn and its one reply would be every such step's result."""
        running = plan.by_status(StepStatus.RUNNING)
        free = self.settings.max_parallel - len(running)
        busy = {s.assignee for s in running}
        ready: list[PlanStep] = []
        for step in plan.ready():
            if len(ready) < free and step.assignee not in busy:
                ready.append(step)
                busy.add(step.assignee)
        started = False
        for step in ready:
            step = step.model_copy(update={"attempt": step.attempt + 1})
            task_id = task_id_for(plan, step)
            goal, inputs = step_goal(plan, step)
            task_id = await self.dispatcher.start(plan, step, task_id, goal, inputs)
            plan = self.mark(plan, step, StepStatus.RUNNING, task_id=task_id, started_at=self.clock.now(),
                             finished_at=None, result=None, error=None)
            started = True
        if started:
            await self.store.save(plan)
        return plan

    async def _observe(self, plan: Plan, running: list[PlanStep],
                       outcomes: list[StepOutcome]) -> tuple[Plan, list[str], list[str]]:
        by_task = {o.task_id: o for o in outcomes}
        now = self.clock.now()
        failed: list[str] = []
        reviewed: list[str] = []
        for step in running:
            outcome = by_task.get(str(step.task_id))
            if outcome is not None and outcome.status == "done":
                plan = self.mark(plan, step, StepStatus.DONE, result=outcome.output, finished_at=now)
                if step.review:
                    reviewed.append(step.id)
            elif outcome is not None:
                error = outcome.error or f"its task was {outcome.status}"
                plan = self.mark(plan, step, StepStatus.FAILED, error=error, finished_at=now)
                failed.append(step.id)
            elif now.timestamp() >= self._deadline(step):
                await self.dispatcher.cancel(str(step.task_id))
                plan = self.mark(plan, step, StepStatus.FAILED, finished_at=now,
                                 error=f"no result within step_timeout_s={self.settings.step_timeout_s:g}s (task cancelled)")
                failed.append(step.id)
        return plan, failed, reviewed

    async def _needs_revision(self, plan: Plan, failed: list[str]) -> RunReport:
        if revisions_left(plan, self.settings) > 0:
            return RunReport(plan, Stop.REVISE, failed=failed)
        plan = await self.give_up(plan)
        return RunReport(plan, Stop.GAVE_UP, failed=failed)

    async def give_up(self, plan: Plan) -> Plan:
        """End the plan as failed: running steps' tasks cancelled, the rest skipped."""
        for step in plan.steps:
            if step.status is StepStatus.RUNNING:
                await self.dispatcher.cancel(str(step.task_id))
                plan = self.mark(plan, step, StepStatus.SKIPPED, error="the plan gave up", finished_at=self.clock.now())
            elif step.status is StepStatus.PENDING:
                plan = self.mark(plan, step, StepStatus.SKIPPED)
        plan = plan.model_copy(update={"status": PlanStatus.FAILED})
        await self.store.save(plan)
        return plan


__all__ = ["PlanRunner", "PlanStore", "RunReport", "StepDispatcher", "StepOutcome", "Stop", "revisions_left",
           "step_goal", "task_id_for"]
