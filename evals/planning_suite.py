"""The planning suite's deterministic team model and its grader (``evals/suites/planning``, docs/planning.md).

The model (:func:`respond`) plays every agent of ``evals/suites/planning/team.yaml``:

* the **planner** plans three steps (two independent look-ups, then a sum), revises the plan when a step
  fails (the look-up moves to the other worker's backup), reflects if it can, and answers with the sum; when
  its turn recalled that lesson from memory, its first plan looks both quarters up in the backup;
* **archivist** fails every task that needs the archive (it is offline) with ``task_update``;
* **analyst** answers look-ups from its backup table, and sums the numbers it is given.

The grader (:func:`grade`) reads the session's events from the lake: a ``plan.revised`` event, the right
final answer, and the two independent look-ups running at the same time (from ``plan.step`` rows).
"""

from __future__ import annotations

import json
import re
from typing import Any

from troupe.evals.models import Grade, GradeInput
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

BACKUP = {"q1": 150, "q2": 200, "q3": 175, "q4": 225}
"""The analyst's table: revenue per quarter."""
LESSON = "The archive can be offline: look revenue up in the analyst's backup table."
"""What the planner reflects after its look-up in the archive failed; a later plan that recalls it skips the archive."""


def _call(name: str, **arguments: Any) -> LLMResponse:
    return LLMResponse(tool_calls=[ToolCall(id=f"c-{name}", name=name, arguments=json.dumps(arguments))])


def _tool_results(request: LLMRequest) -> list[str]:
    return [m.content or "" for m in request.messages if m.role == "tool"]


def _quarters(text: str) -> list[str]:
    return [q.lower() for q in re.findall(r"\b(Q[1-4])\b", text, re.I)]


def _asked(request: LLMRequest) -> tuple[str, str]:
    """The request (the first user message that is not recalled memory) and the memory recalled for it."""
    users = [m for m in request.messages if m.role == "user"]
    ask = next((m.content or "" for m in users if m.name != "memory"), "")
    return ask, " ".join(m.content or "" for m in users if m.name == "memory")


def planner(request: LLMRequest) -> LLMResponse | str:
    ask, memory = _asked(request)
    first, second = [*_quarters(ask), "q1", "q2"][:2]
    results = _tool_results(request)
    last = results[-1] if results else ""
    tools = {t.name for t in request.tools}
    if not results:
        if LESSON in memory:  # a lesson of an earlier plan (planner.reflect): skip the archive
            return _call("make_plan", goal=f"total revenue of {first.upper()} and {second.upper()}",
                         rationale="a lesson recalled from memory: the archive can be offline, use the backup", steps=[
                             {"id": q, "description": f"Look up {q.upper()} revenue in the backup table.",
                              "assignee": "analyst"} for q in (first, second)] + [
                             {"id": "total", "description": "Add the revenues you are given.", "assignee": "analyst",
                              "depends_on": [first, second]}])
        return _call("make_plan", goal=f"total revenue of {first.upper()} and {second.upper()}",
                     rationale="look both quarters up at once, then add them", steps=[
                         {"id": first, "description": f"Look up {first.upper()} revenue in the archive.", "assignee": "archivist"},
                         {"id": second, "description": f"Look up {second.upper()} revenue in the backup table.",
                          "assignee": "analyst"},
                         {"id": "total", "description": "Add the revenues you are given.", "assignee": "analyst",
                          "depends_on": [first, second]}])
    if "failed" in last and "revise_plan" in last:
        return _call("revise_plan", reason=f"the archive is offline, so step {first} failed; the analyst's backup has it",
                     steps=[{"id": f"{first}-backup", "description": f"Look up {first.upper()} revenue in the backup table.",
                             "assignee": "analyst"},
                            {"id": "total", "description": "Add the revenues you are given.", "assignee": "analyst",
                             "depends_on": [f"{first}-backup", second]}])
    if "is done" in last and "reflect" in tools and not any("lesson(s) recorded" in r for r in results):
        return _call("reflect", lessons=[LESSON])
    done = next((r for r in reversed(results) if " is done." in r), "")
    total = re.search(r"- total \[done\] \w+.*?-> (\S+)", done)
    if total:
        return f"The total revenue of {first.upper()} and {second.upper()} is {total.group(1).rstrip('.')}."
    return "I could not finish the plan: " + last[:300]


def worker(request: LLMRequest, agent: str) -> LLMResponse | str:
    task = next((m.content or "" for m in reversed(request.messages) if m.role == "user" and m.name != "memory"), "")
    results = _tool_results(request)
    task_id = re.search(r"New task (\S+) from", task)
    if agent == "archivist":
        if not results and task_id:
            return _call("task_update", task_id=task_id.group(1), status="failed",
                         error="the archive is offline (connection refused)")
        return "The archive is offline."
    if "Add the revenues" in task:
        numbers = [int(n) for n in re.findall(r"revenue: (\d+)", task)]
        return str(sum(numbers))
    quarters = [q for q in dict.fromkeys(_quarters(task.split("\n")[0])) if q in BACKUP]
    if quarters:
        return ", ".join(f"{q.upper()} revenue: {BACKUP[q]}" for q in quarters)
    return "I do not know."


def respond(request: LLMRequest, agent: str) -> LLMResponse | str:
    """The function model of the planning suite's team (``provider: function``)."""
    return planner(request) if agent == "planner" else worker(request, agent)


# --- grading ----------------------------------------------------------------------------------
def overlapped(events: list[Any]) -> bool:
    """Whether two steps of the first plan version that do not depend on each other ran at the same time."""
    created = next((e for e in events if e.type == "plan.created"), None)
    if created is None:
        return False
    steps = created.data["steps"]
    spans: dict[str, list[Any]] = {}
    for e in events:
        if e.type == "plan.step" and e.data["version"] == 1:
            if e.data["to"] == "running":
                spans.setdefault(e.data["step_id"], [e.ts, None])
            elif e.data["from"] == "running" and e.data["step_id"] in spans:
                spans[e.data["step_id"]][1] = e.ts
    for i, a in enumerate(steps):
        for b in steps[i + 1:]:
            if a["id"] in b["depends_on"] or b["id"] in a["depends_on"] or a["id"] not in spans or b["id"] not in spans:
                continue
            (sa, ea), (sb, eb) = spans[a["id"]], spans[b["id"]]
            if sa <= (eb or sa) and sb <= (ea or sb):
                return True
    return False


def grade(inp: GradeInput) -> Grade:
    """1/3 each: the plan was revised, the answer holds the right total, independent steps overlapped."""
    events = inp.events
    asked = inp.case.input if isinstance(inp.case.input, str) else " ".join(str(t) for t in inp.case.input)
    want = str(sum(BACKUP[q] for q in dict.fromkeys(_quarters(asked))))
    checks = {
        "revised": any(e.type == "plan.revised" for e in events),
        "answer": bool(want) and want in (inp.reply or ""),
        "parallel": overlapped(events),
    }
    score = sum(checks.values()) / len(checks)
    failed = [k for k, ok in checks.items() if not ok]
    return Grade(grader="python", score=score, passed=not failed,
                 explanation="all checks passed" if not failed else f"failed: {', '.join(failed)}")


__all__ = ["grade", "overlapped", "respond"]
