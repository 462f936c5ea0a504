"""What the planner model reads after its plan ran: where it stopped, every step's state, and what to do next."""

from __future__ import annotations

import json
from typing import Any, Final

from troupe.runtime.capabilities import PlannerSettings
from troupe.runtime.planning.model import Plan, StepStatus
from troupe.runtime.planning.runner import RunReport, Stop, revisions_left

PREVIEW: Final = 400
"""Characters of a step's result or error shown to the planner."""


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW else text[:PREVIEW] + "…"


def steps_table(plan: Plan) -> str:
    lines = []
    for s in plan.steps:
        detail = ""
        if s.status is StepStatus.DONE:
            detail = f" -> {_preview(s.result)}"
        elif s.error:
            detail = f" ({_preview(s.error)})"
        deps = f" after {', '.join(s.depends_on)}" if s.depends_on else ""
        lines.append(f"- {s.id} [{s.status}] {s.assignee}{deps}: {_preview(s.description)}{detail}")
    return "\n".join(lines)


def report_text(report: RunReport, settings: PlannerSettings) -> str:
    """The tool result of ``make_plan``, ``revise_plan`` and ``continue_plan``."""
    plan = report.plan
    head = f"Plan {plan.id} (version {plan.version}, goal: {_preview(plan.goal)})"
    left = revisions_left(plan, settings)
    if report.stop is Stop.DONE:
        nxt = ("Every step is done. If a result contradicts the plan, call revise_plan with contradicts=[its id] "
               f"({left} revision(s) left); otherwise ")
        nxt += ("call reflect with the lessons you learned, then " if settings.reflect else "")
        nxt += "answer with the outcome."
        return f"{head} is done.\n{steps_table(plan)}\n\n{nxt}"
    if report.stop is Stop.REVISE:
        failed = ", ".join(report.failed)
        return (f"{head}: step(s) {failed} failed.\n{steps_table(plan)}\n\nRevise the plan: call revise_plan with the "
                f"reason and the steps still to do (done and running steps are kept; give a failed step's id to retry "
                f"it, as it was or changed; a pending or failed step you leave out is dropped). {left} revision(s) left.")
    if report.stop is Stop.REVIEW:
        reviewed = ", ".join(report.reviewed)
        return (f"{head}: step(s) {reviewed} done, for your review.\n{steps_table(plan)}\n\nIf a result contradicts "
                f"the plan, call revise_plan with contradicts=[its id] ({left} revision(s) left); otherwise call "
                "continue_plan.")
    nxt = "call reflect with the lessons you learned, then " if settings.reflect else ""
    return (f"{head} FAILED: step(s) {', '.join(report.failed) or '?'} failed and no revision is left "
            f"(planner.max_replans={settings.max_replans}).\n{steps_table(plan)}\n\nNow {nxt}answer with the outcome: "
            "what was done, and what failed and why.")


__all__ = ["report_text", "steps_table"]
