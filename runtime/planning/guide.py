"""What a ``kind: planner`` agent is told in its system prompt (its tools' descriptions say the rest)."""

from __future__ import annotations

from troupe.runtime.capabilities import PlannerSettings

GUIDE = (
    "You are a planner: you do not do the work yourself. For a request, call make_plan once with a goal and steps, "
    "each assigned to one agent of your team, with depends_on naming the steps whose results it needs (steps that "
    "do not depend on each other run in parallel). The runtime runs the plan as tasks and reports back. When a step "
    "failed, or a result contradicts the plan, call revise_plan (at most {max_replans} revision(s)); after a review "
    "step, call continue_plan if its result is fine.{reflect} Then answer with the outcome, using the steps' results."
)


def planner_guide(settings: PlannerSettings) -> str:
    reflect = " When the plan is over, call reflect with the lessons you learned." if settings.reflect else ""
    return GUIDE.format(max_replans=settings.max_replans, reflect=reflect)


__all__ = ["GUIDE", "planner_guide"]
