"""Payloads of planning (``kind: planner`` agents, docs/planning.md): a plan made, a step's status changed, a
plan revised, a reflection written. ``agent`` is the planner; ``task_id`` the task it was serving."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class PlanCreatedPayload(Payload):
    """A planner wrote a new plan (to the blackboard under ``plans/<plan_id>``)."""

    event_type: Literal["plan.created"] = "plan.created"
    plan_id: str
    """The plan's id."""
    goal: str
    """What the plan is for."""
    version: int
    """1 (each revision adds one)."""
    steps: list[dict[str, Any]]
    """The steps: ``{id, description, assignee, depends_on, review}`` each."""
    rationale: str
    """Why the planner planned it so."""


class PlanStepPayload(Payload):
    """A step of a plan changed status (``status`` is the new one)."""

    event_type: Literal["plan.step"] = "plan.step"
    plan_id: str
    """The plan."""
    version: int
    """The plan's version at the change."""
    step_id: str
    """The step."""
    from_: str = Field(alias="from")
    """The status before: ``pending``, ``running``, ``done``, ``failed`` or ``skipped``."""
    to: str
    """The status after."""
    assignee: str
    """The agent that does the step."""
    step_task_id: str | None
    """The task that carries it out (once dispatched)."""
    attempt: int
    """How many times the step was dispatched."""
    result: Any = None
    """Its result (JSON), or a preview when too big for one row."""
    error: str | None = None
    """Why it failed (the task's error, a timeout, or the result the planner judged contradicting)."""


class PlanRevisedPayload(Payload):
    """The planner revised a plan (``plan_id`` at its new ``version``)."""

    event_type: Literal["plan.revised"] = "plan.revised"
    plan_id: str
    """The plan."""
    version: int
    """Its new version."""
    reason: str
    """Why the planner revised it."""
    added: list[dict[str, Any]]
    """Steps new in this version."""
    changed: list[dict[str, Any]]
    """Steps whose definition changed (``{id, before, after}``): a failed step retried differently."""
    removed: list[str]
    """Ids of steps dropped."""
    retried: list[str]
    """Ids of failed steps dispatched again as they were."""
    contradicted: list[str]
    """Ids of done steps whose result the planner judged contradicting (now failed)."""
    rationale: str
    """The planner's rationale for the new version."""


class ReflectionPayload(Payload):
    """A planner's lessons after a plan finished (``planner.reflect``)."""

    event_type: Literal["reflection"] = "reflection"
    plan_id: str
    """The plan reflected on."""
    outcome: str
    """The plan's final status: ``done`` or ``failed``."""
    lessons: list[str]
    """What the planner would do differently, one lesson each."""
    project: str | None
    """The project whose memory the lessons went to (none: the team names no project)."""
    remembered: bool
    """Whether the lessons were written to the project's memory."""


__all__ = ["PlanCreatedPayload", "PlanRevisedPayload", "PlanStepPayload", "ReflectionPayload"]
