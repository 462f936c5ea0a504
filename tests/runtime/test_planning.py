"""The planning core without Ray or a session: plan checks, the runner over a fake task dispatcher, revisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from troupe.runtime.capabilities import PlannerSettings
from troupe.runtime.clock import FakeClock
from troupe.runtime.events import PlanStepPayload
from troupe.runtime.planning.model import Plan, PlanError, PlanStatus, PlanStep, StepDraft, StepStatus, check_steps
from troupe.runtime.planning.report import report_text
from troupe.runtime.planning.revise import revise
from troupe.runtime.planning.runner import PlanRunner, StepOutcome, Stop

MEMBERS = ["planner", "w1", "w2"]


def draft(id: str, assignee: str = "w1", deps: Sequence[str] = (), **kw: Any) -> StepDraft:
    return StepDraft(id=id, description=f"do {id}", assignee=assignee, depends_on=list(deps), **kw)


def plan_of(*drafts: StepDraft) -> Plan:
    return Plan(id="planner-1", goal="g", planner="planner", steps=[PlanStep(**d.model_dump()) for d in drafts])


class FakeTasks:
    """Tasks that finish as scripted: ``outcomes[step id]`` is a list per attempt of ("done", output) or
    ("failed", error) or None (never finishes)."""

    def __init__(self, clock: FakeClock, outcomes: dict[str, list[tuple[str, Any] | None]]) -> None:
        self.clock, self.outcomes = clock, outcomes
        self.started: list[tuple[str, str, dict[str, Any]]] = []
        self.open: dict[str, tuple[str, Any] | None] = {}
        self.cancelled: list[str] = []
        self.batches: list[list[str]] = []
        """Step ids started between two waits (what ran at once)."""
        self._batch: list[str] = []

    async def start(self, plan: Plan, step: PlanStep, task_id: str, goal: str, inputs: dict[str, Any]) -> str:
        self.started.append((step.id, goal, inputs))
        self._batch.append(step.id)
        self.open[task_id] = self.outcomes[step.id][step.attempt - 1]
        return task_id

    async def wait_any(self, task_ids: Sequence[str], timeout: float) -> list[StepOutcome]:
        if self._batch:
            self.batches.append(self._batch)
            self._batch = []
        finished = [t for t in task_ids if self.open.get(t) is not None]
        if not finished:
            self.clock.advance(timeout)
            return []
        t = finished[0]  # one at a time, in order
        status, value = self.open.pop(t)  # type: ignore[misc]
        return [StepOutcome(t, status, output=value if status == "done" else None,
                            error=value if status == "failed" else None)]

    async def cancel(self, task_id: str) -> None:
        self.cancelled.append(task_id)
        self.open.pop(task_id, None)


class Store:
    def __init__(self) -> None:
        self.saved: list[Plan] = []

    async def save(self, plan: Plan) -> None:
        self.saved.append(plan)


def setup(outcomes: dict[str, list[tuple[str, Any] | None]], **settings: Any) -> tuple[PlanRunner, FakeTasks, Store, list[Any]]:
    clock = FakeClock()
    tasks, store, events = FakeTasks(clock, outcomes), Store(), []
    runner = PlanRunner(PlannerSettings(**settings), tasks, store, emit=lambda p, **f: events.append(p), clock=clock)
    return runner, tasks, store, events


# --- checks ------------------------------------------------------------------------------------
def test_check_steps_lists_every_problem_for_the_model() -> None:
    steps = [draft("a", "ghost"), draft("b", deps=["nope"]), draft("c", deps=["d"]), draft("d", deps=["c"]),
             draft("e", "planner"), draft("a", "w2")]
    with pytest.raises(PlanError) as err:
        check_steps(steps, MEMBERS, planner="planner")
    text = err.value.message
    assert "unknown assignee 'ghost'; agents you can assign: w1, w2" in text
    assert "step 'b' depends on unknown step 'nope'" in text
    assert "dependency cycle: c -> d -> c" in text
    assert "cannot assign a step to yourself" in text
    assert "duplicate step ids: a" in text


def test_a_valid_plan_passes_and_an_empty_one_does_not() -> None:
    check_steps([draft("a"), draft("b", "w2", ["a"])], MEMBERS, planner="planner")
    with pytest.raises(PlanError, match="at least one step"):
        check_steps([], MEMBERS)


# --- running -----------------------------------------------------------------------------------
async def test_independent_steps_start_together_and_dependents_get_their_results() -> None:
    runner, tasks, store, events = setup({"a": [("done", "12")], "b": [("done", "30")], "sum": [("done", "42")]})
    plan = plan_of(draft("a", "w1"), draft("b", "w2"), draft("sum", "w1", ["a", "b"]))
    report = await runner.run(await runner.create(plan))
    assert report.stop is Stop.DONE and report.plan.status is PlanStatus.DONE
    assert tasks.batches == [["a", "b"], ["sum"]]
    goal, inputs = tasks.started[2][1:]
    assert "- a: 12" in goal and "- b: 30" in goal and inputs["inputs"] == {"a": "12", "b": "30"}
    assert [s.result for s in report.plan.steps] == ["12", "30", "42"]
    assert store.saved[-1].status is PlanStatus.DONE
    moves = [(e.step_id, e.from_, e.to) for e in events if isinstance(e, PlanStepPayload)]
    assert moves[:2] == [("a", "pending", "running"), ("b", "pending", "running")]
    assert ("sum", "running", "done") in moves
    assert events[0].event_type == "plan.created"


async def test_max_parallel_bounds_the_steps_running_at_once() -> None:
    runner, tasks, _, _ = setup({k: [("done", k)] for k in "abc"}, max_parallel=2)
    report = await runner.run(plan_of(draft("a", "w1"), draft("b", "w2"), draft("c", "w3")))
    assert report.stop is Stop.DONE
    assert tasks.batches[0] == ["a", "b"] and tasks.batches[1] == ["c"]


async def test_an_assignee_gets_one_step_at_a_time() -> None:
    """Two tasks in an agent's mailbox are one turn with one reply (both steps' result): they go one by one."""
    runner, tasks, _, _ = setup({k: [("done", k)] for k in "abc"})
    report = await runner.run(plan_of(draft("a", "w1"), draft("b", "w1"), draft("c", "w2")))
    assert report.stop is Stop.DONE and [s.result for s in report.plan.steps] == ["a", "b", "c"]
    assert tasks.batches == [["a", "c"], ["b"]]


async def test_a_failed_step_stops_for_a_revision_then_the_revised_plan_finishes() -> None:
    runner, _, _, events = setup({"a": [("failed", "source offline")], "a2": [("done", "7")],
                                      "b": [("done", "x")], "use": [("done", "7x")]})
    plan = plan_of(draft("a"), draft("b", "w2"), draft("use", "w1", ["a", "b"]))
    report = await runner.run(plan)
    assert report.stop is Stop.REVISE and report.failed == ["a"]
    assert "step(s) a failed" in report_text(report, runner.settings) and "source offline" in report_text(report, runner.settings)
    new, diff = revise(runner, report.plan, [draft("a2", "w2"), draft("use", "w1", ["a2", "b"])],
                       reason="a's source is offline", members=MEMBERS)
    assert new.version == 2 and diff.added[0]["id"] == "a2" and diff.removed == ["a"]
    assert diff.changed[0]["id"] == "use" and diff.changed[0]["after"]["depends_on"] == ["a2", "b"]
    revised = [e for e in events if e.event_type == "plan.revised"]
    assert revised[0].reason == "a's source is offline" and revised[0].version == 2
    final = await runner.run(new)
    assert final.stop is Stop.DONE
    assert {s.id: s.status for s in final.plan.steps} == {"b": "done", "a2": "done", "use": "done"}


async def test_retrying_a_failed_step_by_id_dispatches_a_new_task() -> None:
    runner, _, _, _ = setup({"a": [("failed", "flaky"), ("done", "ok")]})
    report = await runner.run(plan_of(draft("a")))
    new, diff = revise(runner, report.plan, [draft("a")], reason="flaky, retry", members=MEMBERS)
    assert diff.retried == ["a"]
    final = await runner.run(new)
    assert final.stop is Stop.DONE and final.plan.steps[0].task_id == "planner-1.a.2"


async def test_a_step_with_no_result_in_time_fails_and_its_task_is_cancelled() -> None:
    runner, tasks, _, _ = setup({"a": [None]}, step_timeout_s=5)
    report = await runner.run(plan_of(draft("a")))
    assert report.stop is Stop.REVISE
    assert tasks.cancelled == ["planner-1.a.1"]
    assert "step_timeout_s=5s" in (report.plan.steps[0].error or "")


async def test_no_revision_left_gives_up_and_skips_the_rest() -> None:
    runner, tasks, _, _ = setup({"a": [("failed", "boom")], "b": [None], "c": [("done", "")]}, max_replans=0)
    report = await runner.run(plan_of(draft("a"), draft("b", "w2"), draft("c", deps=["a"])))
    assert report.stop is Stop.GAVE_UP and report.plan.status is PlanStatus.FAILED
    assert {s.id: s.status for s in report.plan.steps} == {"a": "failed", "b": "skipped", "c": "skipped"}
    assert tasks.cancelled == ["planner-1.b.1"]
    assert "FAILED" in report_text(report, runner.settings)
    with pytest.raises(PlanError, match="already failed"):
        revise(runner, report.plan, [draft("a")], reason="again", members=MEMBERS)


async def test_revisions_are_bounded_by_max_replans() -> None:
    runner, _, _, _ = setup({"a": [("failed", "x"), ("failed", "y")]}, max_replans=1)
    report = await runner.run(plan_of(draft("a")))
    new, _ = revise(runner, report.plan, [draft("a")], reason="retry", members=MEMBERS)
    again = await runner.run(new)
    assert again.stop is Stop.GAVE_UP  # the one revision is used up


async def test_a_review_step_stops_and_a_contradicting_result_is_redone() -> None:
    runner, tasks, _, events = setup({"a": [("done", "-3"), ("done", "3")], "b": [("done", "9")]})
    plan = plan_of(draft("a", review=True), draft("b", "w2", ["a"]))
    report = await runner.run(plan)
    assert report.stop is Stop.REVIEW and report.reviewed == ["a"] and tasks.batches == [["a"]]
    with pytest.raises(PlanError, match="give a step with id 'a'"):
        revise(runner, report.plan, [draft("b", "w2", ["a"])], reason="negative", members=MEMBERS, contradicts=["a"])
    new, diff = revise(runner, report.plan, [draft("a", review=True), draft("b", "w2", ["a"])],
                       reason="a count cannot be negative", members=MEMBERS, contradicts=["a"])
    assert diff.contradicted == ["a"]
    contradiction = [e for e in events if isinstance(e, PlanStepPayload) and e.to == "failed"]
    assert contradiction[0].step_id == "a" and "contradicts the plan" in (contradiction[0].error or "")
    second = await runner.run(new)
    assert second.stop is Stop.REVIEW
    final = await runner.run(second.plan)
    assert final.stop is Stop.DONE and final.plan.step("b").result == "9"


async def test_a_revision_cannot_change_done_steps_or_break_the_plan() -> None:
    runner, _, _, _ = setup({"a": [("done", "1")], "b": [("failed", "no")]})
    report = await runner.run(plan_of(draft("a"), draft("b", "w2")))
    with pytest.raises(PlanError, match="step 'a' is done and cannot change"):
        revise(runner, report.plan, [draft("a", "w2")], reason="r", members=MEMBERS)
    with pytest.raises(PlanError, match="unknown assignee 'ghost'"):
        revise(runner, report.plan, [draft("b", "ghost")], reason="r", members=MEMBERS)
    with pytest.raises(PlanError, match="say why"):
        revise(runner, report.plan, [draft("b")], reason=" ", members=MEMBERS)
    same, diff = revise(runner, report.plan, [draft("a"), draft("b", "w2")], reason="retry b", members=MEMBERS)
    assert diff.retried == ["b"] and same.step("a").status is StepStatus.DONE
