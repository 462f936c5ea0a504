"""The planning suite through the eval harness, on its deterministic model: every case revises its plan, answers
right and runs the independent look-ups at once (graded from the lake)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe

SUITE = REPO / "evals" / "suites" / "planning" / "suite.yaml"


async def test_the_planning_suite_passes_on_the_deterministic_model(troupe: Troupe, lake: Path) -> None:
    suite = load_suite(SUITE)
    assert len(suite.cases) == 3
    sweep = Sweep(troupe, suite, concurrency=3)
    await sweep.run()
    rows = results_table(lake, sweep.run_id).to_pylist()
    assert len(rows) == 3
    assert all(r["status"] == "completed" for r in rows), [(r["case_id"], r["error"]) for r in rows]
    assert {r["case_id"]: r["score"] for r in rows} == {c.id: 1.0 for c in suite.cases}, rows


def test_the_grader_fails_a_run_without_a_revision() -> None:
    from datetime import UTC, datetime, timedelta

    from troupe.evals.models import Case, GradeInput
    from troupe.evals.planning_suite import grade
    from troupe.runtime.events import Event, PlanCreatedPayload, PlanStepPayload, make_event

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [{"id": "q1", "description": "", "assignee": "a", "depends_on": [], "review": False},
             {"id": "q2", "description": "", "assignee": "b", "depends_on": [], "review": False}]

    def ev(payload: object, s: int) -> Event:
        e = make_event(payload, run_id="r-1", session_id="s-1", seq=s)  # type: ignore[arg-type]
        return e.model_copy(update={"ts": t0 + timedelta(seconds=s)})

    def step(sid: str, frm: str, to: str) -> PlanStepPayload:
        return PlanStepPayload(plan_id="p", version=1, step_id=sid, from_=frm, to=to, assignee="a", step_task_id=None,
                               attempt=1)

    serial = [ev(PlanCreatedPayload(plan_id="p", goal="g", version=1, steps=steps, rationale=""), 0),
              ev(step("q1", "pending", "running"), 1), ev(step("q1", "running", "done"), 2),
              ev(step("q2", "pending", "running"), 3), ev(step("q2", "running", "done"), 4)]
    case = Case(id="c", input="What is the total revenue of Q1 and Q2?")
    inp = GradeInput(case=case, reply="It is 350.", status="completed", session_id="s-1", run_id="r-1", lake="/nowhere")
    g = grade(inp.with_events(serial))
    assert not g.passed and abs(g.score - 1 / 3) < 1e-9 and g.explanation == "failed: revised, parallel"
