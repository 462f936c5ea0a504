"""The typed plan a ``kind: planner`` agent writes: steps with an assignee and dependencies, and checks
whose messages the model reads so it can fix its plan (unknown assignee, unknown dependency, a cycle)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.errors import ModelVisibleError

STEP_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
PLAN_KEY_PREFIX: Final = "plans/"
"""Blackboard key prefix of plans: ``plans/<plan id>``."""


class PlanError(ModelVisibleError, ValueError):
    """A plan (or a revision) the runtime cannot run; the message lists every problem so the model can fix them."""


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class PlanStatus(StrEnum):
    ACTIVE = "active"
    """Steps are running or waiting, or a failed step waits for a revision."""
    DONE = "done"
    FAILED = "failed"
    """Given up: a step failed and no revision is left (or the planner abandoned it)."""


class StepDraft(BaseModel):
    """A step as the model writes it (in ``make_plan`` and ``revise_plan``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STEP_ID_PATTERN, description="Short step id of your choosing, e.g. \"fetch\".")
    description: str = Field(min_length=1, description="What the assignee must do, self-contained.")
    assignee: str = Field(description="Agent id that does this step.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of steps that must be done first.")
    review: bool = Field(default=False, description="Show me this step's result before its dependents start.")


class PlanStep(StepDraft):
    """A step of a plan, as the runtime keeps it."""

    status: StepStatus = StepStatus.PENDING
    task_id: str | None = None
    """The task that carries out the step (set when it is dispatched)."""
    attempt: int = 0
    """How many times it was dispatched."""
    result: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def draft(self) -> dict[str, Any]:
        """Its definition only (what a revision may change)."""
        return self.model_dump(include={"id", "description", "assignee", "depends_on", "review"})


class Plan(BaseModel):
    """A planner's plan: written to the blackboard under ``plans/<id>`` on every change."""

    id: str
    goal: str
    version: int = 1
    """1 for the first plan; each revision adds one."""
    planner: str
    """The agent id of the planner that owns it."""
    status: PlanStatus = PlanStatus.ACTIVE
    steps: list[PlanStep]
    rationale: str = ""
    task_id: str | None = None
    """The task the planner was serving when it made the plan (the steps' tasks are its subtasks)."""

    @property
    def key(self) -> str:
        return f"{PLAN_KEY_PREFIX}{self.id}"

    def step(self, step_id: str) -> PlanStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise PlanError(f"plan {self.id} has no step {step_id!r}; its steps: {', '.join(s.id for s in self.steps)}")

    def by_status(self, *statuses: StepStatus) -> list[PlanStep]:
        return [s for s in self.steps if s.status in statuses]

    def ready(self) -> list[PlanStep]:
        """Pending steps whose dependencies are all done, in plan order."""
        done = {s.id for s in self.steps if s.status is StepStatus.DONE}
        return [s for s in self.steps if s.status is StepStatus.PENDING and set(s.depends_on) <= done]

    def replace(self, step: PlanStep) -> Plan:
        return self.model_copy(update={"steps": [step if s.id == step.id else s for s in self.steps]})


def check_steps(steps: Sequence[StepDraft], members: Iterable[str], *, planner: str | None = None) -> None:
    """Raise :class:`PlanError` listing every problem: no steps, duplicate ids, unknown or self assignees,
    unknown dependencies, and dependency cycles (named by their path)."""
    members = [str(m) for m in members]
    problems: list[str] = []
    if not steps:
        problems.append("a plan needs at least one step")
    ids = [s.id for s in steps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"duplicate step ids: {', '.join(dupes)} (give each step its own id)")
    known = set(ids)
    for s in steps:
        if s.assignee not in members:
            problems.append(f"step {s.id!r}: unknown assignee {s.assignee!r}; agents you can assign: "
                            f"{', '.join(m for m in members if m != planner) or 'none'}")
        elif planner is not None and s.assignee == planner:
            problems.append(f"step {s.id!r}: you ({planner}) cannot assign a step to yourself; pick another agent")
        for d in s.depends_on:
            if d not in known:
                problems.append(f"step {s.id!r} depends on unknown step {d!r}; known steps: {', '.join(ids)}")
            elif d == s.id:
                problems.append(f"step {s.id!r} depends on itself")
    cycle = find_cycle({s.id: [d for d in s.depends_on if d in known and d != s.id] for s in steps})
    if cycle:
        problems.append(f"dependency cycle: {' -> '.join(cycle)} (a step cannot wait for itself)")
    if problems:
        raise PlanError("the plan is not valid:\n- " + "\n- ".join(problems) + "\nFix these and call the tool again.")


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> the nodes it depends on) as a path ``[a, b, a]``, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in graph.get(node, []):
            if colour.get(nxt) == grey:
                return [*stack[stack.index(nxt):], nxt]
            if colour.get(nxt) == white and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        colour[node] = black
        return None

    for node in graph:
        if colour[node] == white and (found := visit(node)) is not None:
            return found
    return None


__all__ = [
    "PLAN_KEY_PREFIX",
    "STEP_ID_PATTERN",
    "Plan",
    "PlanError",
    "PlanStatus",
    "PlanStep",
    "StepDraft",
    "StepStatus",
    "check_steps",
    "find_cycle",
]
