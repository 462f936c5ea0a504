"""A plan's revision: what the planner model changes after a step failed (or contradicted the plan), checked
and diffed. Done and running steps are kept; the drafts given replace the pending and failed ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from troupe.runtime.capabilities import PlannerSettings
from troupe.runtime.events import PlanRevisedPayload
from troupe.runtime.planning.model import Plan, PlanError, PlanStatus, PlanStep, StepDraft, StepStatus, check_steps
from troupe.runtime.planning.runner import PlanRunner, revisions_left

_KEPT = (StepStatus.DONE, StepStatus.RUNNING)


@dataclass
class Revision:
    """The diff of one revision (the ``plan.revised`` event's fields)."""

    added: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    contradicted: list[str] = field(default_factory=list)


def revise(runner: PlanRunner, plan: Plan, drafts: Sequence[StepDraft], *, reason: str, members: Iterable[str],
           contradicts: Sequence[str] = (), rationale: str = "",
           settings: PlannerSettings | None = None) -> tuple[Plan, Revision]:
    """The next version of ``plan``: ``contradicts`` (done steps whose result the planner rejects) fail, the
    done and running steps stay, and ``drafts`` replace every other step (same id: retried as written, or
    changed; new id: added; an old pending or failed step left out is removed). Raises :class:`PlanError`
    (nothing changed) when the plan is over, no revision is left, or the new plan does not check out."""
    settings = settings or runner.settings
    if not reason.strip():
        raise PlanError("say why you revise the plan (reason)")
    if plan.status is PlanStatus.FAILED:
        raise PlanError(f"plan {plan.id} has already failed (it gave up); answer with the outcome, or make a new plan")
    if revisions_left(plan, settings) <= 0:
        raise PlanError(f"no revisions left (planner.max_replans={settings.max_replans}); answer with the outcome")
    diff = Revision()
    draft_ids = [d.id for d in drafts]
    for sid in contradicts:
        step = plan.step(sid)
        if step.status is not StepStatus.DONE:
            raise PlanError(f"step {sid!r} is {step.status}, not done: only a done step's result can contradict the plan")
        if sid not in draft_ids:
            raise PlanError(f"step {sid!r} contradicts the plan: give a step with id {sid!r} (redo it, perhaps "
                            "differently) or replace it and its dependents under new ids")
    old = {s.id: s for s in plan.steps}
    kept = {s.id for s in plan.steps if s.status in _KEPT and s.id not in contradicts}
    steps: dict[str, PlanStep] = {s.id: s for s in plan.steps if s.id in kept}
    for d in drafts:
        before = old.get(d.id)
        if d.id in kept:
            assert before is not None
            if before.draft() != d.model_dump():
                raise PlanError(f"step {d.id!r} is {before.status} and cannot change; give the new step another id")
            continue
        if d.id in steps:
            raise PlanError(f"step id {d.id!r} appears twice; give each step its own id")
        if before is None:
            steps[d.id] = PlanStep(**d.model_dump())
            diff.added.append(d.model_dump())
            continue
        keep = {"attempt": before.attempt, "status": StepStatus.PENDING}
        if before.draft() != d.model_dump():
            diff.changed.append({"id": d.id, "before": before.draft(), "after": d.model_dump()})
        elif before.status is StepStatus.FAILED and d.id not in contradicts:
            diff.retried.append(d.id)
        steps[d.id] = PlanStep(**d.model_dump(), **keep)
    diff.removed = [s.id for s in plan.steps if s.id not in steps]
    check_steps(list(steps.values()), members, planner=plan.planner)
    for sid in contradicts:  # checked: now fail them (the event says why), then take the new definitions
        plan = runner.mark(plan, plan.step(sid), StepStatus.FAILED, error=f"contradicts the plan: {reason}")
        diff.contradicted.append(sid)
    order = [s.id for s in plan.steps if s.id in steps] + [i for i in steps if i not in old]
    new = plan.model_copy(update={"steps": [steps[i] for i in order], "version": plan.version + 1,
                                  "status": PlanStatus.ACTIVE, "rationale": rationale or plan.rationale})
    runner.emit(PlanRevisedPayload(plan_id=new.id, version=new.version, reason=reason, added=diff.added,
                                   changed=diff.changed, removed=diff.removed, retried=diff.retried,
                                   contradicted=diff.contradicted, rationale=rationale))
    return new, diff


__all__ = ["Revision", "revise"]
