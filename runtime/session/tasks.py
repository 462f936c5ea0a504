"""The session task registry: who is doing what, for whom, and how it ended.

Plain Python (no Ray): a host actor owns one instance per session and drives it from built-in
tools. Tasks form a tree (a lead splits a goal into subtasks), move through a small checked
state machine, and when one finishes the agent waiting on it is told by a NOTICE message, so
agents delegate and get results back without polling. :meth:`TaskRegistry.wait` lets host code
await completion without polling either.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable
from typing import Any, Final, Self

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.errors import InvalidTransitionError
from troupe.runtime.events import Emitter, TaskCreatedPayload, TaskStatusPayload, null_emitter
from troupe.runtime.ids import AgentId, SessionId, TaskId
from troupe.runtime.messages import CURRENT_TURN, ControlOp, MessageKind
from troupe.runtime.session.blackboard import ensure_json, json_preview
from troupe.runtime.session.task_model import (
    ALLOWED_TRANSITIONS,
    Task,
    TaskError,
    TaskStatus,
    UnknownTaskError,
    completion_text,
    merge_artifacts,
    status_names,
    status_of,
    task_id_of,
)

Notify = Callable[[AgentId, MessageKind, str, dict[str, Any]], None]
"""How a core asks its host to message an agent: recipient, kind, content text, data."""

EVENT_OUTPUT_LIMIT: Final = 2048
"""Characters of JSON text of a task's output copied into a ``task.status`` event."""
SNAPSHOT_FORMAT: Final = 1
_HINT_IDS: Final = 20


_ANY: Any = object()
"""Sentinel for ``list(parent_id=...)``: omitted means any parent, ``None`` means top-level only."""


class TaskRegistry:
    """All tasks of one session, their tree, their state machine and completion notices.

    Single-threaded by design: the host actor calls it from its event loop, which is also what
    makes the ``asyncio.Event`` behind :meth:`wait` safe to signal from :meth:`update`.
    """

    def __init__(
        self,
        session_id: SessionId,
        *,
        emit: Emitter = null_emitter,
        notify: Notify | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.session_id = SessionId(session_id)
        self._emit = emit
        self._notify = notify
        self._clock = clock
        self._tasks: dict[TaskId, Task] = {}
        self._changed = asyncio.Event()
        self._waits = 0

    # creation ------------------------------------------------------------------------------
    def create(
        self,
        goal: str,
        *,
        created_by: AgentId | str,
        assignee: AgentId | str | None = None,
        parent_id: TaskId | str | None = None,
        input: Any = None,
        task_id: TaskId | str | None = None,
        taint: Iterable[str] | None = None,
        vouched: Iterable[str] | None = None,
    ) -> Task:
        """Add a pending task (under ``parent_id`` if given) and send it to ``assignee`` if set.

        ``taint``: the untrusted sources its creator had read (risk scoring), so the assignee reads the
        goal as untrusted content; ``vouched``: values in it the creator's user wrote (still trusted)."""
        if not isinstance(goal, str) or not goal.strip():
            raise TaskError("a task needs a non-empty goal saying what should be done")
        created_by = AgentId(created_by)
        assignee = AgentId(assignee) if assignee is not None else None
        try:
            tid = TaskId(task_id) if task_id is not None else self._fresh_id()
        except ValueError as e:
            raise TaskError(str(e), task_id=str(task_id)) from None
        if tid in self._tasks:
            raise TaskError(f"task id '{tid}' is already in use; choose another id or omit it", task_id=str(tid))
        parent = None
        if parent_id is not None:
            parent = self._get(TaskId(parent_id), role="parent task")
            if parent.terminal:
                raise TaskError(
                    f"cannot create a subtask under task '{parent.id}': it is already {parent.status}; "
                    "create it under a task that is still open, or as a top-level task",
                    task_id=str(parent.id),
                )
        input = ensure_json(input, what="task input")

        now = self._clock.now()
        task = Task(
            id=tid,
            parent_id=parent.id if parent is not None else None,
            session_id=self.session_id,
            assignee=assignee,
            created_by=created_by,
            goal=goal,
            input=input,
            taint=[str(s) for s in taint or ()],
            vouched=[str(v) for v in vouched or ()] if taint else [],
            turn=CURRENT_TURN.get(),
            created_at=now,
            updated_at=now,
        )
        self._tasks[tid] = task
        if parent is not None:
            self._tasks[parent.id] = parent.model_copy(update={"children": [*parent.children, tid]})
        self._emit(
            TaskCreatedPayload(
                goal=goal,
                parent_id=task.parent_id,
                assignee=assignee,
                input=json_preview(input, EVENT_OUTPUT_LIMIT)[0],
            ),
            task_id=str(tid),
            agent=str(created_by),
            status=task.status.value,
        )
        if assignee is not None:
            self._send_assignment(task)
        self._signal()
        return task

    def _fresh_id(self) -> TaskId:
        while (tid := TaskId.new()) in self._tasks:  # pragma: no cover - 64 random bits
            pass
        return tid

    # changes -------------------------------------------------------------------------------
    def update(
        self,
        task_id: TaskId | str,
        *,
        by: AgentId | str,
        status: TaskStatus | str | None = None,
        output: Any = None,
        error: str | None = None,
        artifacts: Iterable[str] | None = None,
        taint: Iterable[str] | None = None,
    ) -> Task:
        """Move a task through its state machine and/or record output, error and artifacts.

        ``output``/``error`` replace the stored ones when given; ``artifacts`` are appended (once
        each). A terminal task cannot change at all. Reaching a terminal status sends a NOTICE
        to whoever is waiting on the task (see :meth:`_waiting_agent`), unless that is ``by``.
        ``taint``: the untrusted sources ``by`` had read (risk scoring); with an output or error it
        marks them, and the notice then taints its receiver.
        """
        by = AgentId(by)
        task = self._get(TaskId(task_id))
        new_status = status_of(status) if status is not None else task.status
        if task.terminal:
            raise InvalidTransitionError(
                f"task '{task.id}' is already {task.status} and cannot change any more "
                f"(requested: {new_status}); allowed next statuses: none",
                task_id=str(task.id),
                current=task.status.value,
                requested=new_status.value,
            )
        if new_status != task.status and new_status not in ALLOWED_TRANSITIONS[task.status]:
            raise InvalidTransitionError(
                f"task '{task.id}' cannot move from {task.status} to {new_status}; "
                f"allowed next statuses from {task.status}: {status_names(ALLOWED_TRANSITIONS[task.status])}",
                task_id=str(task.id),
                current=task.status.value,
                requested=new_status.value,
            )
        changes: dict[str, Any] = {"status": new_status, "updated_at": self._clock.now()}
        if output is not None:
            changes["output"] = ensure_json(output, what="task output")
        if error is not None:
            if not isinstance(error, str):
                raise TaskError(f"task error must be a string, got {type(error).__name__}")
            changes["error"] = error
        if output is not None or error is not None:
            changes["output_taint"], changes["output_by"] = [str(s) for s in taint or ()], by
        if artifacts is not None:
            changes["artifacts"] = merge_artifacts(task.artifacts, artifacts)

        updated = task.model_copy(update=changes)
        self._tasks[updated.id] = updated
        self._emit_status(updated, old=task.status, by=by)
        if updated.terminal:
            self._send_completion(updated, by=by)
        self._signal()
        return updated

    def assign(self, task_id: TaskId | str, assignee: AgentId | str, *, by: AgentId | str) -> Task:
        """Hand an open task to ``assignee`` (who gets a TASK message); same assignee is a no-op."""
        by = AgentId(by)
        assignee = AgentId(assignee)
        task = self._get(TaskId(task_id))
        if task.terminal:
            raise InvalidTransitionError(
                f"cannot assign task '{task.id}' to {assignee}: it is already {task.status}",
                task_id=str(task.id),
                current=task.status.value,
            )
        if task.assignee == assignee:
            return task
        updated = task.model_copy(update={"assignee": assignee, "updated_at": self._clock.now()})
        self._tasks[updated.id] = updated
        self._emit_status(updated, old=task.status, by=by, previous_assignee=task.assignee)
        self._send_assignment(updated)
        self._signal()
        return updated

    def cancel(self, task_id: TaskId | str, *, by: AgentId | str) -> list[Task]:
        """Cancel a task and its whole subtree (open tasks only); returns those cancelled, root first.

        Only the root's cancellation is reported to its waiting agent: the waiters of the
        descendants are inside the cancelled subtree themselves.
        """
        by = AgentId(by)
        root = self._get(TaskId(task_id))
        changed: list[Task] = []
        now = self._clock.now()
        for task in self._subtree(root):
            if task.terminal:
                continue
            updated = task.model_copy(update={"status": TaskStatus.CANCELLED, "updated_at": now})
            self._tasks[updated.id] = updated
            extra = {"cancelled_with": str(root.id)} if task.id != root.id else {}
            self._emit_status(updated, old=task.status, by=by, **extra)
            if task.id == root.id:
                self._send_completion(updated, by=by)
            self._stop_assignee(updated, by=by)
            changed.append(updated)
        if changed:
            self._signal()
        return changed

    def cancel_turn(self, turn: int, *, by: AgentId | str) -> list[str]:
        """Cancel the tasks created in user turn ``turn`` that are still open (each with its subtree), when
        the client cancelled that turn; returns the ids cancelled."""
        ids: list[str] = []
        for task in [t for t in self._tasks.values() if t.turn == turn]:
            if not self._tasks[task.id].terminal:
                ids += [str(t.id) for t in self.cancel(task.id, by=by)]
        return ids

    def _stop_assignee(self, task: Task, *, by: AgentId) -> None:
        """The assignee may be working on the task right now: tell it to stop (a CONTROL message
        jumps its mailbox); it drops the task and stops a turn that served only cancelled work."""
        if self._notify is None or task.assignee is None or task.assignee == by:
            return
        self._notify(task.assignee, MessageKind.CONTROL, "", {"op": ControlOp.CANCEL.value, "task_id": str(task.id)})

    # reads ---------------------------------------------------------------------------------
    def get(self, task_id: TaskId | str) -> Task:
        """The task with this id, or :class:`UnknownTaskError` listing the known ids."""
        return self._get(task_id_of(task_id))

    def list(
        self,
        *,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        assignee: AgentId | str | None = None,
        parent_id: TaskId | str | None = _ANY,
    ) -> list[Task]:
        """Tasks in creation order, filtered by status (one or several), assignee and parent.

        ``parent_id`` omitted matches any task, ``None`` matches top-level tasks only.
        """
        if status is None:
            wanted = None
        elif isinstance(status, str):
            wanted = {status_of(status)}
        else:
            wanted = {status_of(s) for s in status}
        out = []
        for task in self._tasks.values():
            if wanted is not None and task.status not in wanted:
                continue
            if assignee is not None and task.assignee != assignee:
                continue
            if parent_id is not _ANY and task.parent_id != parent_id:
                continue
            out.append(task)
        return out

    def tree(self, root_id: TaskId | str | None = None) -> dict[str, Any]:
        """A nested, JSON-able view for display: one task and its descendants, or the whole session.

        Each node is ``{id, goal, status, assignee, children: [...]}``; without ``root_id`` the top
        node is ``{session_id, children: [every top-level task]}``.
        """
        if root_id is not None:
            return self._node(self._get(task_id_of(root_id)))
        roots = [t for t in self._tasks.values() if t.parent_id is None]
        return {"session_id": str(self.session_id), "children": [self._node(t) for t in roots]}

    def _node(self, task: Task) -> dict[str, Any]:
        return {
            "id": str(task.id),
            "goal": task.goal,
            "status": task.status.value,
            "assignee": str(task.assignee) if task.assignee is not None else None,
            "children": [self._node(self._tasks[c]) for c in task.children],
        }

    async def wait(self, task_ids: Iterable[TaskId | str], *, timeout: float | None = None) -> builtins.list[Task]:
        """Wait until every task in ``task_ids`` is terminal; returns them in the order asked.

        Woken by registry changes rather than polling. ``timeout`` is measured with the registry's
        clock; when it runs out the builtin :class:`TimeoutError` is raised naming what is still open.
        """
        ids = [task_id_of(t) for t in task_ids]
        for tid in ids:
            self._get(tid)
        if not await self._until(lambda: self._all_terminal(ids), timeout):
            still_open = ", ".join(f"{t} ({self._tasks[t].status})" for t in dict.fromkeys(ids) if not self._tasks[t].terminal)
            raise TimeoutError(f"timed out after {timeout}s waiting for tasks to finish; still open: {still_open}")
        return [self._tasks[tid] for tid in ids]

    async def wait_any(self, task_ids: Iterable[TaskId | str], *, timeout: float) -> builtins.list[Task]:
        """The tasks of ``task_ids`` that are terminal, once one is or ``timeout`` s have passed (``[]``: none yet).

        One call however many tasks it watches, over by ``timeout`` at the latest: a caller in another actor
        (a planner polling its steps) leaves no wait behind on this registry when it stops listening."""
        ids = list(dict.fromkeys(task_id_of(t) for t in task_ids))
        for tid in ids:
            self._get(tid)
        await self._until(lambda: any(self._tasks[tid].terminal for tid in ids), timeout)
        return [self._tasks[tid] for tid in ids if self._tasks[tid].terminal]

    def pending_waits(self) -> int:
        """Calls of :meth:`wait` and :meth:`wait_any` waiting now (a diagnostic: a returned call leaves none)."""
        return self._waits

    async def _until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Wait (woken by changes) until ``done()``, or ``timeout`` s on the registry's clock; whether it is."""
        if done():
            return True
        self._waits += 1
        try:
            if timeout is None:
                await self._until_true(done)
                return True
            waiter = asyncio.ensure_future(self._until_true(done))
            timer = asyncio.ensure_future(self._clock.sleep(max(0.0, timeout)))
            try:
                await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (waiter, timer):
                    if not fut.done():
                        fut.cancel()
                await asyncio.gather(waiter, timer, return_exceptions=True)
            return done()
        finally:
            self._waits -= 1

    async def _until_true(self, done: Callable[[], bool]) -> None:
        while True:
            changed = self._changed  # captured before the check, so no signal can be missed
            if done():
                return
            await changed.wait()

    def _all_terminal(self, ids: builtins.list[TaskId]) -> bool:
        return all(self._tasks[tid].terminal for tid in ids)

    def _signal(self) -> None:
        """Wake every waiter; each re-checks its own condition against a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()

    # helpers -------------------------------------------------------------------------------
    def _get(self, task_id: TaskId, *, role: str = "task") -> Task:
        task = self._tasks.get(task_id)
        if task is not None:
            return task
        known = list(self._tasks)
        if not known:
            hint = "no tasks exist yet in this session"
        else:
            shown = ", ".join(known[-_HINT_IDS:])
            more = f" (and {len(known) - _HINT_IDS} older)" if len(known) > _HINT_IDS else ""
            hint = f"known task ids: {shown}{more}"
        raise UnknownTaskError(f"unknown {role} {str(task_id)!r}; {hint}", task_id=str(task_id))

    def _subtree(self, root: Task) -> builtins.list[Task]:
        """``root`` and all its descendants, depth-first, parents before children."""
        out: builtins.list[Task] = []
        stack = [root.id]
        while stack:
            task = self._tasks[stack.pop()]
            out.append(task)
            stack.extend(reversed(task.children))
        return out

    def _waiting_agent(self, task: Task) -> AgentId:
        """Who hears about a finished task: the parent task's assignee, else the task's creator."""
        if task.parent_id is not None:
            parent = self._tasks[task.parent_id]
            if parent.assignee is not None:
                return parent.assignee
        return task.created_by

    def _emit_status(self, task: Task, *, old: TaskStatus, by: AgentId, **extra: Any) -> None:
        payload = TaskStatusPayload(
            from_=old.value,
            to=task.status.value,
            output=json_preview(task.output, EVENT_OUTPUT_LIMIT)[0],
            error=task.error,
            assignee=task.assignee,
            artifacts=task.artifacts,
            **extra,
        )
        self._emit(payload, task_id=str(task.id), agent=str(by), status=task.status.value)

    def _send_assignment(self, task: Task) -> None:
        if self._notify is None or task.assignee is None:
            return
        self._notify(
            task.assignee,
            MessageKind.TASK,
            f"Task {task.id}: {task.goal}",
            {
                "task_id": str(task.id),
                "parent_id": str(task.parent_id) if task.parent_id is not None else None,
                "input": task.input,
                "created_by": str(task.created_by),
                **({"taint": task.taint, "vouched": task.vouched} if task.taint else {}),
            },
        )

    def _send_completion(self, task: Task, *, by: AgentId) -> None:
        target = self._waiting_agent(task)
        if self._notify is None or target == by:
            return
        self._notify(
            target,
            MessageKind.NOTICE,
            completion_text(task),
            {"task_id": str(task.id), "status": task.status.value, "output": task.output, "error": task.error,
             **({"taint": task.output_taint, "by": str(task.output_by)} if task.output_taint else {})},
        )

    # checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """All tasks, in creation order, as a JSON-able dict."""
        return {
            "format": SNAPSHOT_FORMAT,
            "session_id": str(self.session_id),
            "tasks": [t.model_dump(mode="json") for t in self._tasks.values()],
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        session_id: SessionId,
        *,
        emit: Emitter = null_emitter,
        notify: Notify | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Self:
        """Rebuild from :meth:`snapshot` output; emits and notifies nothing."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"unsupported task registry snapshot format {snapshot.get('format')!r}; expected {SNAPSHOT_FORMAT}"
            )
        registry = cls(session_id, emit=emit, notify=notify, clock=clock)
        for data in snapshot["tasks"]:
            task = Task.model_validate(data)
            registry._tasks[task.id] = task
        return registry


__all__ = [
    "ALLOWED_TRANSITIONS",
    "Task",
    "TaskError",
    "TaskRegistry",
    "TaskStatus",
    "UnknownTaskError",
]
