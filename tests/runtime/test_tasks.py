"""Unit tests for the task registry: tree, state machine, notices, cancel, wait, snapshots."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from tests.support.cores import SID, START, Recorder
from troupe.runtime.clock import FakeClock
from troupe.runtime.errors import InvalidTransitionError, ModelVisibleError, TroupeError
from troupe.runtime.ids import AgentId, TaskId
from troupe.runtime.messages import MessageKind
from troupe.runtime.session.blackboard import InvalidValueError
from troupe.runtime.session.task_model import (
    ALLOWED_TRANSITIONS,
    TERMINAL,
    Task,
    TaskError,
    TaskStatus,
    UnknownTaskError,
)
from troupe.runtime.session.tasks import TaskRegistry

S = TaskStatus


@pytest.fixture
def reg(rec: Recorder, clock: FakeClock) -> TaskRegistry:
    return TaskRegistry(SID, emit=rec.emit, notify=rec.notify, clock=clock)


# --- create ----------------------------------------------------------------------------------
def test_create_stores_a_pending_task_emits_and_sends_it_to_the_assignee(reg: TaskRegistry, rec: Recorder) -> None:
    task = reg.create("summarise the sources", created_by="lead", assignee="worker", input={"n": 3}, task_id="t-1")

    assert task == Task(
        id=TaskId("t-1"),
        session_id=SID,
        assignee=AgentId("worker"),
        created_by=AgentId("lead"),
        goal="summarise the sources",
        status=S.PENDING,
        input={"n": 3},
        created_at=START,
        updated_at=START,
    )
    assert reg.get("t-1") == task
    assert rec.events == [
        (
            "task.created",
            {"goal": "summarise the sources", "parent_id": None, "assignee": "worker", "input": {"n": 3}},
            {"task_id": "t-1", "agent": "lead", "status": "pending"},
        )
    ]
    assert rec.notes == [
        (
            "worker",
            MessageKind.TASK,
            "Task t-1: summarise the sources",
            {"task_id": "t-1", "parent_id": None, "input": {"n": 3}, "created_by": "lead"},
        )
    ]


def test_create_without_assignee_notifies_nobody_and_generates_an_id(reg: TaskRegistry, rec: Recorder) -> None:
    task = reg.create("think", created_by="lead")
    assert task.id.startswith("t-") and task.assignee is None
    assert rec.notes == []
    assert reg.create("think again", created_by="lead").id != task.id


def test_subtasks_are_linked_to_their_parent(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    child = reg.create("part", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("part 2", created_by="lead", parent_id="t-root", task_id="t-b")

    assert child.parent_id == "t-root"
    assert reg.get("t-root").children == ["t-a", "t-b"]
    assert rec.events[1][1]["parent_id"] == "t-root"
    assert rec.notes[1][3]["parent_id"] == "t-root"


def test_duplicate_task_id_is_refused(reg: TaskRegistry) -> None:
    reg.create("one", created_by="lead", task_id="t-1")
    with pytest.raises(TaskError, match="'t-1' is already in use"):
        reg.create("two", created_by="lead", task_id="t-1")
    assert reg.get("t-1").goal == "one"


def test_malformed_task_id_is_refused(reg: TaskRegistry) -> None:
    with pytest.raises(TaskError, match="invalid task id 'has space'"):
        reg.create("x", created_by="lead", task_id="has space")
    assert reg.list() == []


def test_unknown_parent_is_named(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("root", created_by="lead", task_id="t-root")
    with pytest.raises(UnknownTaskError, match="unknown parent task 't-nope'; known task ids: t-root"):
        reg.create("child", created_by="lead", parent_id="t-nope")
    assert len(reg.list()) == 1 and rec.types() == ["task.created"]


@pytest.mark.parametrize("status", ["done", "failed", "cancelled"])
def test_no_subtasks_under_a_terminal_parent(reg: TaskRegistry, status: str) -> None:
    reg.create("root", created_by="lead", task_id="t-root")
    reg.update("t-root", by="lead", status=status)
    with pytest.raises(TaskError, match=f"under task 't-root': it is already {status}"):
        reg.create("late", created_by="lead", parent_id="t-root")
    assert reg.get("t-root").children == []


@pytest.mark.parametrize("goal", ["", "   ", None])
def test_goal_is_required(reg: TaskRegistry, goal: Any) -> None:
    with pytest.raises(TaskError, match="non-empty goal"):
        reg.create(goal, created_by="lead")


def test_input_must_be_json(reg: TaskRegistry, rec: Recorder) -> None:
    with pytest.raises(InvalidValueError, match="task input at \\$.when is a datetime"):
        reg.create("x", created_by="lead", input={"when": START})
    assert reg.list() == [] and rec.events == []


# --- the state machine -----------------------------------------------------------------------
def test_transition_table_is_the_documented_one() -> None:
    assert {
        S.PENDING: {S.RUNNING, S.BLOCKED, S.DONE, S.FAILED, S.CANCELLED},
        S.RUNNING: {S.BLOCKED, S.DONE, S.FAILED, S.CANCELLED},
        S.BLOCKED: {S.RUNNING, S.FAILED, S.CANCELLED},
        S.DONE: set(),
        S.FAILED: set(),
        S.CANCELLED: set(),
    } == ALLOWED_TRANSITIONS
    assert {S.DONE, S.FAILED, S.CANCELLED} == TERMINAL
    assert [s.terminal for s in S] == [False, False, False, True, True, True]


def _task_in(reg: TaskRegistry, status: TaskStatus) -> Task:
    """A fresh task driven (by allowed moves) into ``status``."""
    task = reg.create("work", created_by="lead")
    path = {S.PENDING: [], S.RUNNING: [S.RUNNING], S.BLOCKED: [S.BLOCKED]}.get(status, [status])
    for step in path:
        task = reg.update(task.id, by="lead", status=step)
    assert task.status is status
    return task


ALLOWED = [(a, b) for a, nexts in ALLOWED_TRANSITIONS.items() for b in sorted(nexts)]
FORBIDDEN = [(a, b) for a in S for b in S if b not in ALLOWED_TRANSITIONS[a] and not (a == b and not a.terminal)]


def test_the_matrices_cover_every_pair() -> None:
    assert len(ALLOWED) == 12 and len(FORBIDDEN) == 36 - 12 - 3


@pytest.mark.parametrize(("frm", "to"), ALLOWED)
def test_allowed_transition(reg: TaskRegistry, rec: Recorder, clock: FakeClock, frm: TaskStatus, to: TaskStatus) -> None:
    task = _task_in(reg, frm)
    clock.advance(5)
    rec.events.clear()
    updated = reg.update(task.id, by="lead", status=to)
    assert updated.status is to and reg.get(task.id).status is to
    assert updated.updated_at == START + timedelta(seconds=5) and updated.created_at == START
    assert [(t, p["from"], p["to"], f["status"]) for t, p, f in rec.events] == [("task.status", frm, to, to)]


@pytest.mark.parametrize(("frm", "to"), FORBIDDEN)
def test_forbidden_transition(reg: TaskRegistry, rec: Recorder, frm: TaskStatus, to: TaskStatus) -> None:
    task = _task_in(reg, frm)
    rec.events.clear()
    with pytest.raises(InvalidTransitionError) as info:
        reg.update(task.id, by="lead", status=to)
    msg = str(info.value)
    assert repr(str(task.id)) in msg and str(frm) in msg and str(to) in msg and "allowed next statuses" in msg
    assert info.value.fields == {"task_id": str(task.id), "current": frm.value, "requested": to.value}
    assert reg.get(task.id).status is frm and rec.events == []


def test_forbidden_transition_lists_the_allowed_ones(reg: TaskRegistry) -> None:
    task = _task_in(reg, S.BLOCKED)
    with pytest.raises(InvalidTransitionError) as info:
        reg.update(task.id, by="lead", status="done")
    assert str(info.value) == (
        f"task '{task.id}' cannot move from blocked to done; "
        "allowed next statuses from blocked: running, failed, cancelled"
    )


def test_terminal_tasks_cannot_even_record_output(reg: TaskRegistry) -> None:
    task = _task_in(reg, S.DONE)
    with pytest.raises(InvalidTransitionError, match="already done .*allowed next statuses: none"):
        reg.update(task.id, by="lead", output="late")
    assert reg.get(task.id).output is None


def test_unknown_status_is_refused(reg: TaskRegistry) -> None:
    task = reg.create("x", created_by="lead")
    with pytest.raises(TaskError, match="unknown task status 'finished'; use one of pending, running"):
        reg.update(task.id, by="lead", status="finished")


def test_progress_updates_keep_the_status_and_append_artifacts(reg: TaskRegistry, rec: Recorder) -> None:
    task = _task_in(reg, S.RUNNING)
    rec.events.clear()
    reg.update(task.id, by="w", output={"partial": 1}, artifacts=["research/a"])
    updated = reg.update(task.id, by="w", status="running", artifacts=["research/a", "research/b"])
    assert updated.status is S.RUNNING
    assert updated.output == {"partial": 1}
    assert updated.artifacts == ["research/a", "research/b"]
    assert [(p["from"], p["to"], p["artifacts"]) for _, p, _ in rec.events] == [
        ("running", "running", ["research/a"]),
        ("running", "running", ["research/a", "research/b"]),
    ]
    assert rec.notes == []


@pytest.mark.parametrize("artifacts", [[""], [3], [None]])
def test_artifacts_must_be_non_empty_strings(reg: TaskRegistry, artifacts: Any) -> None:
    task = reg.create("x", created_by="lead")
    with pytest.raises(TaskError, match="artifacts must be non-empty strings"):
        reg.update(task.id, by="lead", artifacts=artifacts)
    assert reg.get(task.id).artifacts == []


def test_output_must_be_json(reg: TaskRegistry) -> None:
    task = reg.create("x", created_by="lead")
    with pytest.raises(InvalidValueError, match="task output"):
        reg.update(task.id, by="lead", status="done", output={"s": {1}})
    assert reg.get(task.id).status is S.PENDING


def test_status_event_truncates_large_output(reg: TaskRegistry, rec: Recorder) -> None:
    task = reg.create("x", created_by="lead")
    reg.update(task.id, by="w", status="done", output="y" * 10_000)
    payload = rec.events[-1][1]
    assert isinstance(payload["output"], str) and len(payload["output"]) == 2049
    assert payload["output"].endswith("…")
    assert reg.get(task.id).output == "y" * 10_000


# --- completion notices ----------------------------------------------------------------------
def test_finished_subtask_notifies_the_parents_assignee(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    reg.create("part", created_by="planner", assignee="w1", parent_id="t-root", task_id="t-a")
    rec.notes.clear()
    rec.events.clear()

    reg.update("t-a", by="w1", status="running")
    reg.update("t-a", by="w1", status="done", output="42 sources", artifacts=["research/sources"])

    assert rec.notes == [
        (
            "lead",
            MessageKind.NOTICE,
            "Task t-a done: 42 sources",
            {"task_id": "t-a", "status": "done", "output": "42 sources", "error": None},
        )
    ]
    assert rec.events == [
        (
            "task.status",
            {"from": "pending", "to": "running", "output": None, "error": None, "assignee": "w1", "artifacts": []},
            {"task_id": "t-a", "agent": "w1", "status": "running"},
        ),
        (
            "task.status",
            {
                "from": "running",
                "to": "done",
                "output": "42 sources",
                "error": None,
                "assignee": "w1",
                "artifacts": ["research/sources"],
            },
            {"task_id": "t-a", "agent": "w1", "status": "done"},
        ),
    ]


def test_without_a_parent_assignee_the_creator_is_notified(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("root", created_by="user", task_id="t-root")
    reg.create("part", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("solo", created_by="lead", assignee="w2", task_id="t-solo")
    rec.notes.clear()

    reg.update("t-a", by="w1", status="failed", error="site down")
    reg.update("t-solo", by="w2", status="done", output={"rows": 3})

    assert rec.notes == [
        (
            "lead",
            MessageKind.NOTICE,
            "Task t-a failed: site down",
            {"task_id": "t-a", "status": "failed", "output": None, "error": "site down"},
        ),
        (
            "lead",
            MessageKind.NOTICE,
            'Task t-solo done: {"rows": 3}',
            {"task_id": "t-solo", "status": "done", "output": {"rows": 3}, "error": None},
        ),
    ]


def test_the_agent_making_the_update_is_not_told_about_it(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("own", created_by="lead", task_id="t-own")
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    reg.create("part", created_by="lead", parent_id="t-root", task_id="t-a")
    rec.notes.clear()
    reg.update("t-own", by="lead", status="done")
    reg.update("t-a", by="lead", status="cancelled")
    assert rec.notes == []


def test_notice_text_is_truncated_but_data_keeps_the_whole_output(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("x", created_by="lead", task_id="t-x")
    reg.update("t-x", by="w", status="done", output="z" * 2000)
    _, _, content, data = rec.notes[0]
    assert content == "Task t-x done: " + "z" * 500 + "…"
    assert data["output"] == "z" * 2000


@pytest.mark.parametrize(
    ("status", "kwargs", "text"),
    [
        ("done", {}, "Task t-x done: no output"),
        ("failed", {}, "Task t-x failed: no error given"),
        ("cancelled", {}, "Task t-x cancelled."),
        ("cancelled", {"error": "not needed"}, "Task t-x cancelled: not needed"),
    ],
)
def test_notice_text_without_output(
    reg: TaskRegistry, rec: Recorder, status: str, kwargs: dict[str, Any], text: str
) -> None:
    reg.create("x", created_by="lead", task_id="t-x")
    reg.update("t-x", by="w", status=status, **kwargs)
    assert [c for _, _, c, _ in rec.notes] == [text]


def test_no_notify_callback_means_no_notices(rec: Recorder) -> None:
    reg = TaskRegistry(SID, emit=rec.emit)
    reg.create("x", created_by="lead", assignee="w", task_id="t-x")
    assert reg.update("t-x", by="w", status="done").status is S.DONE
    assert rec.types() == ["task.created", "task.status"]


# --- assign ----------------------------------------------------------------------------------
def test_assign_hands_the_task_over_and_tells_the_new_assignee(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("x", created_by="lead", assignee="w1", task_id="t-x", input=[1])
    reg.update("t-x", by="w1", status="blocked")
    rec.notes.clear()
    rec.events.clear()

    task = reg.assign("t-x", "w2", by="lead")

    assert task.assignee == "w2" and task.status is S.BLOCKED
    assert rec.notes == [
        ("w2", MessageKind.TASK, "Task t-x: x", {"task_id": "t-x", "parent_id": None, "input": [1], "created_by": "lead"})
    ]
    assert [(t, p["assignee"], p["previous_assignee"], f["agent"]) for t, p, f in rec.events] == [
        ("task.status", "w2", "w1", "lead")
    ]


def test_assigning_to_the_current_assignee_changes_nothing(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("x", created_by="lead", assignee="w1", task_id="t-x")
    rec.notes.clear()
    rec.events.clear()
    assert reg.assign("t-x", "w1", by="lead").assignee == "w1"
    assert rec.notes == [] and rec.events == []


def test_terminal_tasks_cannot_be_reassigned(reg: TaskRegistry) -> None:
    reg.create("x", created_by="lead", assignee="w1", task_id="t-x")
    reg.update("t-x", by="w1", status="done")
    with pytest.raises(InvalidTransitionError, match="cannot assign task 't-x' to w2: it is already done"):
        reg.assign("t-x", "w2", by="lead")
    assert reg.get("t-x").assignee == "w1"


# --- lookups ---------------------------------------------------------------------------------
def test_unknown_task_lists_known_ids(reg: TaskRegistry) -> None:
    with pytest.raises(UnknownTaskError, match="unknown task 't-x'; no tasks exist yet"):
        reg.get("t-x")
    reg.create("a", created_by="lead", task_id="t-a")
    reg.create("b", created_by="lead", task_id="t-b")
    with pytest.raises(UnknownTaskError) as info:
        reg.get("t-x")
    assert str(info.value) == "unknown task 't-x'; known task ids: t-a, t-b"
    assert isinstance(info.value, TroupeError) and isinstance(info.value, ModelVisibleError)
    with pytest.raises(UnknownTaskError, match="invalid task id"):
        reg.get("not an id")
    with pytest.raises(UnknownTaskError):
        reg.update("t-x", by="lead", status="done")


def test_unknown_task_hint_is_bounded(reg: TaskRegistry) -> None:
    for i in range(25):
        reg.create("x", created_by="lead", task_id=f"t-{i:02d}")
    with pytest.raises(UnknownTaskError) as info:
        reg.get("t-x")
    msg = str(info.value)
    assert "t-24" in msg and "t-05" in msg and "t-04," not in msg and "(and 5 older)" in msg


def test_list_filters(reg: TaskRegistry) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    reg.create("a", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("b", created_by="lead", assignee="w2", parent_id="t-root", task_id="t-b")
    reg.create("c", created_by="lead", assignee="w1", parent_id="t-a", task_id="t-c")
    reg.create("other", created_by="user", task_id="t-other")
    reg.update("t-a", by="w1", status="running")
    reg.update("t-b", by="w2", status="done")

    def ids(tasks: list[Task]) -> list[str]:
        return [t.id for t in tasks]

    assert ids(reg.list()) == ["t-root", "t-a", "t-b", "t-c", "t-other"]
    assert ids(reg.list(status="running")) == ["t-a"]
    assert ids(reg.list(status=[S.PENDING, "done"])) == ["t-root", "t-b", "t-c", "t-other"]
    assert ids(reg.list(assignee="w1")) == ["t-a", "t-c"]
    assert ids(reg.list(parent_id=None)) == ["t-root", "t-other"]
    assert ids(reg.list(parent_id="t-root")) == ["t-a", "t-b"]
    assert ids(reg.list(parent_id="t-root", assignee="w1", status="running")) == ["t-a"]


def test_tree_nests_children(reg: TaskRegistry) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    reg.create("a", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("c", created_by="lead", parent_id="t-a", task_id="t-c")
    reg.create("other", created_by="user", task_id="t-other")
    reg.update("t-c", by="lead", status="done")

    def node(tid: str, goal: str, status: str, assignee: str | None, children: list[Any]) -> dict[str, Any]:
        return {"id": tid, "goal": goal, "status": status, "assignee": assignee, "children": children}

    sub = node("t-a", "a", "pending", "w1", [node("t-c", "c", "done", None, [])])
    assert reg.tree("t-a") == sub
    assert reg.tree() == {
        "session_id": "s-test",
        "children": [node("t-root", "root", "pending", "lead", [sub]), node("t-other", "other", "pending", None, [])],
    }
    json.dumps(reg.tree())
    with pytest.raises(UnknownTaskError):
        reg.tree("t-nope")


# --- cancel ----------------------------------------------------------------------------------
def test_cancel_takes_down_the_open_part_of_the_subtree(reg: TaskRegistry, rec: Recorder) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root")
    reg.create("a", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("a1", created_by="w1", assignee="w3", parent_id="t-a", task_id="t-a1")
    reg.create("a2", created_by="w1", parent_id="t-a", task_id="t-a2")
    reg.create("b", created_by="lead", assignee="w2", parent_id="t-root", task_id="t-b")
    reg.create("sibling", created_by="user", task_id="t-sib")
    reg.update("t-a1", by="w3", status="done", output="ok")
    reg.update("t-a", by="w1", status="running")
    rec.events.clear()
    rec.notes.clear()

    cancelled = reg.cancel("t-a", by="user")

    assert [t.id for t in cancelled] == ["t-a", "t-a2"]
    assert {t.id: t.status.value for t in reg.list()} == {
        "t-root": "pending",
        "t-a": "cancelled",
        "t-a1": "done",
        "t-a2": "cancelled",
        "t-b": "pending",
        "t-sib": "pending",
    }
    assert [(f["task_id"], p["from"], p["to"], p.get("cancelled_with"), f["agent"]) for _, p, f in rec.events] == [
        ("t-a", "running", "cancelled", None, "user"),
        ("t-a2", "pending", "cancelled", "t-a", "user"),
    ]
    # only the root's waiter (the parent's assignee) hears of the outcome; the assignee of a
    # cancelled task is told to stop working on it (a control message, ahead of its queue)
    assert rec.notes == [
        (
            "lead",
            MessageKind.NOTICE,
            "Task t-a cancelled.",
            {"task_id": "t-a", "status": "cancelled", "output": None, "error": None},
        ),
        ("w1", MessageKind.CONTROL, "", {"op": "cancel", "task_id": "t-a"}),
    ]


def test_cancel_of_a_finished_task_still_cancels_its_open_children(reg: TaskRegistry) -> None:
    reg.create("root", created_by="lead", task_id="t-root")
    reg.create("child", created_by="lead", parent_id="t-root", task_id="t-c")
    reg.update("t-root", by="lead", status="done")
    assert [t.id for t in reg.cancel("t-root", by="lead")] == ["t-c"]
    assert reg.get("t-root").status is S.DONE
    assert reg.cancel("t-root", by="lead") == []


# --- wait ------------------------------------------------------------------------------------
async def test_wait_returns_when_another_coroutine_finishes_the_tasks(reg: TaskRegistry) -> None:
    reg.create("a", created_by="lead", task_id="t-a")
    reg.create("b", created_by="lead", task_id="t-b")
    woke: list[str] = []

    async def worker() -> None:
        await asyncio.sleep(0)
        reg.update("t-a", by="w", status="running")
        await asyncio.sleep(0)
        woke.append("a done")
        reg.update("t-a", by="w", status="done", output=1)
        await asyncio.sleep(0)
        woke.append("b failed")
        reg.update("t-b", by="w", status="failed", error="boom")

    waiter = asyncio.create_task(reg.wait(["t-b", "t-a"]))
    work = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done()
    done = await asyncio.wait_for(waiter, 1)
    await work
    assert woke == ["a done", "b failed"]
    assert [(t.id, t.status.value) for t in done] == [("t-b", "failed"), ("t-a", "done")]


async def test_wait_on_finished_tasks_returns_at_once(reg: TaskRegistry, clock: FakeClock) -> None:
    reg.create("a", created_by="lead", task_id="t-a")
    reg.update("t-a", by="lead", status="done")
    assert [t.status for t in await reg.wait(["t-a"], timeout=5)] == [S.DONE]
    assert await reg.wait([]) == []
    assert clock.slept == []


async def test_wait_times_out_on_the_registry_clock(reg: TaskRegistry, clock: FakeClock) -> None:
    reg.create("a", created_by="lead", task_id="t-a")
    reg.create("b", created_by="lead", task_id="t-b")
    reg.update("t-b", by="lead", status="done")
    with pytest.raises(TimeoutError) as info:
        await reg.wait(["t-a", "t-b"], timeout=30)
    assert type(info.value) is TimeoutError
    assert str(info.value) == "timed out after 30s waiting for tasks to finish; still open: t-a (pending)"
    assert clock.slept == [30]


async def test_wait_times_out_on_the_system_clock(rec: Recorder) -> None:
    reg = TaskRegistry(SID, emit=rec.emit)
    reg.create("a", created_by="lead", task_id="t-a")
    with pytest.raises(TimeoutError):
        await reg.wait(["t-a"], timeout=0.01)


async def test_wait_with_a_timeout_succeeds_when_done_in_time(rec: Recorder) -> None:
    reg = TaskRegistry(SID, emit=rec.emit)
    reg.create("a", created_by="lead", task_id="t-a")
    asyncio.get_running_loop().call_later(0.01, lambda: reg.update("t-a", by="w", status="done"))
    assert [t.status for t in await reg.wait(["t-a"], timeout=5)] == [S.DONE]


async def test_wait_on_an_unknown_task_fails_at_once(reg: TaskRegistry) -> None:
    with pytest.raises(UnknownTaskError):
        await reg.wait(["t-missing"])


async def test_cancelling_a_waiter_leaves_the_registry_usable(reg: TaskRegistry) -> None:
    reg.create("a", created_by="lead", task_id="t-a")
    waiter = asyncio.create_task(reg.wait(["t-a"], timeout=None))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    second = asyncio.create_task(reg.wait(["t-a"]))
    await asyncio.sleep(0)
    reg.cancel("t-a", by="lead")
    assert [t.status for t in await asyncio.wait_for(second, 1)] == [S.CANCELLED]


# --- snapshots -------------------------------------------------------------------------------
def test_snapshot_restore_round_trip(reg: TaskRegistry, clock: FakeClock) -> None:
    reg.create("root", created_by="user", assignee="lead", task_id="t-root", input={"q": "why"})
    reg.create("a", created_by="lead", assignee="w1", parent_id="t-root", task_id="t-a")
    reg.create("b", created_by="lead", parent_id="t-root", task_id="t-b")
    clock.advance(1)
    reg.update("t-b", by="lead", status="done", output=[1, 2], artifacts=["k/1"])
    reg.update("t-a", by="w1", status="blocked", error="waiting for input")

    snap = reg.snapshot()
    rec2 = Recorder()
    restored = TaskRegistry.restore(json.loads(json.dumps(snap)), SID, emit=rec2.emit, notify=rec2.notify, clock=clock)

    assert restored.snapshot() == snap
    assert restored.list() == reg.list()
    assert restored.tree() == reg.tree()
    assert rec2.events == [] and rec2.notes == []

    # it carries on where the original left off
    restored.update("t-a", by="w1", status="running")
    restored.update("t-a", by="w1", status="done", output="fine")
    assert [(a, c) for a, _, c, _ in rec2.notes] == [("lead", "Task t-a done: fine")]
    with pytest.raises(TaskError, match="already in use"):
        restored.create("again", created_by="lead", task_id="t-b")


def test_restore_refuses_an_unknown_snapshot_format() -> None:
    with pytest.raises(ValueError, match="snapshot format"):
        TaskRegistry.restore({"format": 0, "tasks": []}, SID)
