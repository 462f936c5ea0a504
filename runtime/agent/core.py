"""One logical agent: a mailbox, a state machine, a context, and turns run one at a time."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from troupe.runtime.agent.a2a_member import remote_turn
from troupe.runtime.agent.a2a_remote import RemoteAgent
from troupe.runtime.agent.context import Context
from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.agent.loop import Turn, TurnResult, run_turn
from troupe.runtime.agent.mailbox import Mailbox
from troupe.runtime.agent.recall_turn import turn_recall
from troupe.runtime.agent.state import AgentState, StateMachine
from troupe.runtime.agent.taint import Taint
from troupe.runtime.config import AgentSpec
from troupe.runtime.errors import InvalidTransitionError, RunError
from troupe.runtime.events import (
    AgentErrorPayload,
    AgentStatePayload,
    MessageDeliveredPayload,
    MessageSentPayload,
    Payload,
)
from troupe.runtime.ids import (
    BLACKBOARD,
    SUPERVISOR,
    TASKS,
    USER,
    AgentId,
    IdScope,
    MessageId,
    RunId,
    SessionId,
    TaskId,
)
from troupe.runtime.llm.types import ChatMessage, LLMClient, ToolCall
from troupe.runtime.memory.model import memory_reach
from troupe.runtime.messages import CURRENT_TURN, ControlOp, Envelope, MessageKind, Trace
from troupe.runtime.planning.guide import planner_guide
from troupe.runtime.skills import discover, skills_prompt
from troupe.tools.context import ToolContext
from troupe.tools.spec import Tool


def system_prompt(spec: AgentSpec, team: Sequence[AgentSpec]) -> str:
    who = spec.name or str(spec.id)
    lines = [f"You are {who} (agent id {spec.id!r})" + (f", the {spec.role}." if spec.role else ".")]
    if spec.instructions:
        lines.append(spec.instructions.strip())
    others = [f"- {a.id}: {a.role or a.name or 'agent'}" for a in team if a.id != spec.id]
    if others:
        lines.append("Your team:\n" + "\n".join(others))
    if spec.kind == "planner":
        lines.append(planner_guide(spec.planner))
    if spec.skills:  # names and descriptions only; load_skill brings the instructions
        lines.append(skills_prompt(discover(spec.skills)))
    lines.append("When you have the final answer, reply with it as plain text (no tool call).")
    return "\n\n".join(lines)


class AgentCore:
    """Plain-Python agent; the host gives it a model, tools and the session's services."""

    def __init__(self, deps: AgentDeps) -> None:
        self.deps = deps
        spec = deps.spec
        self.spec = spec
        self.id = spec.id
        self.session_id = deps.session_id
        self.run_id = deps.run_id
        self.services = deps.services
        self.parent = deps.parent
        self.mailbox = Mailbox()
        self.sm = StateMachine(str(spec.id))
        self.context = Context(system=system_prompt(spec, deps.team or [spec]), budget_tokens=spec.context_tokens)
        self.open_requests: list[Envelope] = []
        self.known_outcomes: set[str] = set()
        """Tasks whose outcome this agent already saw (through a tool); later notices about them are dropped."""
        self.turns = 0
        self._current_task: TaskId | None = None
        self._session_turn: int | None = None
        """The session's user turn this agent works on (its batch's, see :meth:`_turn_of`): on its events and messages."""
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._turn_task: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._checkpoint: Callable[[], Awaitable[None]] | None = None
        """Saves this agent's checkpoint (when the session is durable: :meth:`save_with`)."""
        self._record: dict[str, Any] | None = None
        """The turn in progress, as its checkpoint keeps it: the batch, the context before it, the journal."""
        self._replay: list[Envelope] | None = None
        """A restored turn's batch: the next turn takes exactly these (the rest waits for the one after)."""
        self._journal: dict[str, Any] = {}
        """What the turn being replayed already did (model responses, tool results), by key."""
        self.restored = False
        self.taint = Taint()
        """What untrusted content this agent has read, and the user's messages it received (risk scoring)."""
        self._dumped: dict[MessageId, dict[str, Any]] = {}

    @functools.cached_property
    def workspace(self) -> Path:
        """This session's folder for the file and shell tools (worked out on first use)."""
        return self.deps.workspace.path_for(self.session_id)

    @property
    def llm(self) -> LLMClient:
        return self.deps.llm

    @property
    def tools(self) -> Mapping[str, Tool]:
        return self.deps.tools

    @property
    def profile(self) -> str | None:
        return self.deps.profile

    def save_with(self, checkpoint: Callable[[], Awaitable[None]]) -> None:
        """Make the session durable for this agent: ``checkpoint`` saves it (called by the session's
        :class:`~troupe.runtime.session.durable.Durability`, which needs the agent to exist first)."""
        self._checkpoint = checkpoint

    # --- events -----------------------------------------------------------------------------
    def emit(self, payload: Payload, /, **fields: Any) -> None:
        fields.setdefault("task_id", self._current_task)
        fields.setdefault("turn", self._session_turn)
        self.deps.emit(payload, **fields)

    def _move(self, to: AgentState) -> None:
        prev = self.sm.move(to)
        self.emit(AgentStatePayload(from_=str(prev), to=str(to)), status=str(to))

    # --- delivery ---------------------------------------------------------------------------
    def deliver(self, envelope: Envelope) -> bool:
        """Accept a message. Control acts at once; others queue. False for a duplicate."""
        if self.sm.state is AgentState.TERMINATED:
            return False
        if envelope.is_control:
            if not self.mailbox.remember(envelope.id):
                return False
            self._control(ControlOp(envelope.data.get("op", "")), task_id=envelope.data.get("task_id"))
            return True
        if envelope.kind is MessageKind.NOTICE and envelope.data.get("task_id") in self.known_outcomes:
            self.mailbox.remember(envelope.id)
            return False
        return self.mailbox.put(envelope)

    def _control(self, op: ControlOp, task_id: str | None = None) -> None:
        state = self.sm.state
        if op is ControlOp.PAUSE and state in (AgentState.IDLE, AgentState.RUNNING):
            self._move(AgentState.PAUSED)
            self._resumed.clear()
        elif op is ControlOp.RESUME and state is AgentState.PAUSED:
            self._move(AgentState.RUNNING if self._turn_task and not self._turn_task.done() else AgentState.IDLE)
            self._resumed.set()
            self.mailbox.wake()
        elif op is ControlOp.CANCEL:
            if task_id is not None:
                self._cancel_task(str(task_id))
            elif self._turn_task and not self._turn_task.done():
                self._turn_task.cancel()
        elif op is ControlOp.TERMINATE:
            self.terminate()

    def _cancel_task(self, task_id: str) -> None:
        """A task given to this agent was cancelled: forget it (queued or open), and stop the running
        turn if it was working for that task alone."""
        self.known_outcomes.add(task_id)

        def for_it(e: Envelope) -> bool:
            return e.kind is MessageKind.TASK and e.data.get("task_id") == task_id

        self.mailbox.discard(for_it)
        if not any(for_it(e) for e in self.open_requests):
            return
        self.open_requests = [e for e in self.open_requests if not for_it(e)]
        if not self.open_requests and self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()

    def terminate(self) -> None:
        if self.sm.state is AgentState.TERMINATED:
            return
        self._record = None  # a terminated agent never replays its turn (its checkpoint says so)
        if self._turn_task and not self._turn_task.done():
            self._turn_task.cancel()
        self._move(AgentState.TERMINATED)
        self._resumed.set()
        self.mailbox.wake()

    # --- the run loop -----------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._runner = asyncio.get_running_loop().create_task(self.run(), name=f"agent:{self.id}")
        return self._runner

    async def run(self) -> None:
        while self.sm.state is not AgentState.TERMINATED:
            await self.mailbox.wait()
            if self.sm.state is AgentState.PAUSED:
                await self._resumed.wait()
                continue
            if self.sm.state is AgentState.TERMINATED:
                break
            if self._replay is not None:
                batch, self._replay = self._replay, None
            else:  # a replay takes its record's batches (runtime/agent/recorded.py)
                batch = self.mailbox.take_all() if self.deps.replay is None else self.deps.replay.batches.take(self.mailbox)
            if not batch:
                continue
            self._turn_task = asyncio.get_running_loop().create_task(self._turn(batch))
            try:
                await self._turn_task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                self.emit(AgentStatePayload(turn=self.turns), status="cancelled")
                self.context.close_calls()  # its calls still without a result read as stopped (a valid history)
                if self.sm.state is AgentState.RUNNING:
                    self._move(AgentState.IDLE)
                self._record = None  # a cancelled turn is abandoned, not replayed
                await self._save()
            except Exception as e:  # never let the runner die silently: the agent would stop answering
                await self._fail(RunError(f"{type(e).__name__}: {e}", cause=type(e).__name__))

    async def gate(self) -> None:
        """Before each model round: wait while paused, and while the event log is behind (a slow
        lake slows the agents that fill it instead of growing the host's buffer without bound)."""
        await self._resumed.wait()
        if self.deps.backpressure is not None:
            await self.deps.backpressure()

    async def _turn(self, batch: list[Envelope]) -> None:
        self.turns += 1
        if self._checkpoint is not None:
            self._record = {
                "number": self.turns, "batch": [e.model_dump(mode="json") for e in batch],
                "context": self._context_state(), "open_requests": [e.model_dump(mode="json") for e in self.open_requests],
                "journal": self._journal,
            }
            self._journal = {}
            await self._save()  # the batch is taken: from here a crash replays this turn
        # Ids made in this turn (messages, service calls) are the same when a crash replays it.
        IdScope(f"{self.session_id}:{self.id}:turn:{self.turns}").enter()
        self._session_turn = self._turn_of(batch)
        CURRENT_TURN.set(self._session_turn)  # this turn's task only: service calls made from it carry it on
        for env in batch:
            self.emit(MessageDeliveredPayload(id=env.id, sender=env.sender, kind=env.kind, content=env.content[:2000],
                                              data=env.data))
        self._note_incoming(batch)
        self.open_requests.extend(
            e for e in batch if e.kind is MessageKind.TASK or (e.kind is MessageKind.TEXT and not e.data.get("is_reply"))
        )
        tasks = [e for e in self.open_requests if e.kind is MessageKind.TASK]
        self._current_task = TaskId(tasks[-1].data["task_id"]) if tasks else None
        if self.sm.state is AgentState.ERROR:
            self._move(AgentState.IDLE)
        self._move(AgentState.RUNNING)
        if (recalled := await turn_recall(self.deps.replay, self.services, str(self.id), memory_reach(self.spec), batch,
                                          self.taint if self.deps.risk.enabled else None, str(self.session_id), self.emit)):
            self.context.add(recalled)  # what it remembered, before the turn's messages (memory.recalled; a replay's: recorded)
        self.context.add_incoming(batch)
        turn = Turn(
            deps=self.deps, context=self.context, emit=self.emit, make_ctx=lambda call: self._tool_context(call, turn),
            charge=self._charge, gate=self.gate, number=self.turns,
            journal=self if self._record is not None else None, taint=self.taint,
        )
        try:
            result = await self.run_turn(turn, batch)
            if result.reply is not None:
                await self._answer(result.reply)
        except RunError as e:
            await self._fail(e)
        except Exception as e:  # a bug or a lost peer: the session must hear of it, not hang
            await self._fail(RunError(f"{type(e).__name__}: {e}", cause=type(e).__name__))
        else:
            if self.sm.state is AgentState.RUNNING:
                self._move(AgentState.IDLE)
        if self._record is not None:
            self._record = None
            await self._save()  # a turn boundary

    async def run_turn(self, turn: Turn, batch: list[Envelope]) -> TurnResult:
        """The turn's work: the model loop, or a remote A2A member's call to its agent (runtime/agent/a2a_member.py)."""
        if isinstance(self.deps.llm, RemoteAgent):
            return await remote_turn(self, self.deps.llm, turn, batch)
        return await run_turn(turn)

    def _note_incoming(self, batch: list[Envelope]) -> None:
        """Risk scoring's view of a batch: a message from a tainted agent (it says so in ``data.taint``)
        taints this one, and so do a task a tainted agent created, the notice of a task whose output
        a tainted agent wrote and that of a blackboard entry a tainted agent wrote (their ``data.taint``;
        ``data.vouched``: the values its writer's user wrote, still the reference); the user's messages and requests from other agents are the
        reference that vouches for recipients and values (:mod:`troupe.runtime.agent.taint`)."""
        for env in batch:
            if not env.content:
                continue
            if env.data.get("taint"):
                self.taint.read(_untrusted_source(env), _untrusted_text(env))
                if env.sender in (TASKS, BLACKBOARD):
                    for part in env.data.get("vouched") or ():
                        self.taint.hear(str(part))
            elif env.sender == USER or env.kind is MessageKind.TASK or (
                    env.kind is MessageKind.TEXT and not env.data.get("is_reply")):
                self.taint.hear(env.content)

    def _turn_of(self, batch: list[Envelope]) -> int | None:
        """The user turn a batch belongs to: the latest its messages carry, else the open requests'."""
        turns = [e.trace.turn for e in batch if e.trace.turn is not None]
        if not turns:
            turns = [e.trace.turn for e in self.open_requests if e.trace.turn is not None]
        return max(turns) if turns else None

    async def _fail(self, error: RunError) -> None:
        if self.sm.can(AgentState.ERROR):
            self._move(AgentState.ERROR)
        self.emit(AgentErrorPayload(error=error.message, type=type(error).__name__), status=error.status)
        await self._report_failure(error)

    async def _charge(self, **usage: int) -> None:
        await self.services.call(SUPERVISOR, "charge", agent=str(self.id), **usage)

    async def _report_failure(self, error: RunError) -> None:
        reason = error.fields.get("reason")
        try:
            await self.services.call(
                SUPERVISOR, "agent_failed", agent=str(self.id), error_type=type(error).__name__,
                message=error.message, status=error.status, **({"reason": str(reason)} if reason else {}),
            )
        except Exception:  # the session may already be gone; the agent.error event is recorded
            pass

    async def _answer(self, text: str) -> None:
        """Send the turn's reply to whoever is waiting: open requests and assigned tasks."""
        requests, self.open_requests = self.open_requests, []
        for req in requests:
            if req.kind is MessageKind.TASK:
                task_id = req.data["task_id"]
                marks = {"taint": self.taint.sources[:10]} if self.taint.tainted and self.deps.risk.enabled else {}
                if self.spec.publish_results:  # a tainted agent's result is marked there too (with what its user vouched for)
                    await self.services.call(BLACKBOARD, "put", key=f"results/{task_id}", value=text, author=str(self.id),
                                             kind="artifact", provenance={"message_id": req.id},
                                             **({**marks, "vouched": self.taint.vouched_parts(text)} if marks else {}))
                try:
                    await self.services.call(TASKS, "update", task_id=task_id, by=str(self.id), status="done", output=text,
                                             **marks)
                except InvalidTransitionError:
                    pass  # the agent already closed the task with a tool
                continue
            reply = Envelope(
                session_id=self.session_id, sender=self.id, recipient=req.sender, content=text,
                reply_to=req.id, data={"is_reply": True}, trace=Trace(run_id=self.run_id, task_id=self._current_task, turn=self._session_turn),
            )
            await self.send(reply)
        self._current_task = None

    async def send(self, envelope: Envelope) -> None:
        if self._session_turn is not None and envelope.trace.turn is None:
            envelope = envelope.model_copy(update={"trace": envelope.trace.model_copy(update={"turn": self._session_turn})})
        if self.taint.tainted and self.deps.risk.enabled and "taint" not in envelope.data:
            # the receiver reads what a tainted agent writes as untrusted too
            envelope = envelope.model_copy(update={"data": {**envelope.data, "taint": self.taint.sources[:10]}})
        self.emit(MessageSentPayload(id=envelope.id, to=envelope.recipient, topic=envelope.topic, kind=envelope.kind,
                                     content=envelope.content[:2000]))
        await self.services.send(envelope)

    def _tool_context(self, call: ToolCall, turn: Turn) -> ToolContext:
        def end_turn() -> None:
            turn.end_requested = True

        def forget_notices(task_ids: Sequence[str]) -> int:
            ids = set(task_ids)
            self.known_outcomes |= ids
            return self.mailbox.discard(lambda e: e.kind is MessageKind.NOTICE and e.data.get("task_id") in ids)

        return ToolContext(
            session_id=self.session_id, run_id=self.run_id, agent=self.id, services=self.services, spec=self.spec,
            tool_call_id=call.id, task_id=self._current_task, emit=self.emit, end_turn=end_turn,
            request=self.open_requests[0].content if self.open_requests else None,
            forget_notices=forget_notices, send=self.send, workspace=self.workspace,
            workspace_config=self.deps.workspace, sandbox=self.deps.sandbox, secrets=self.deps.secrets,
            taint=self.taint if self.deps.risk.enabled else None, knowledge=self.deps.knowledge,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "state": str(self.sm.state), "mailbox": len(self.mailbox), "turns": self.turns,
            "parent": self.parent, "open_requests": len(self.open_requests), "restored": self.restored,
        }

    # --- checkpoints ------------------------------------------------------------------------
    async def _save(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint()

    def get(self, key: str) -> Any | None:
        """The turn journal (:class:`troupe.runtime.agent.loop.Journal`): what a replayed turn already did."""
        return self._record["journal"].get(key) if self._record is not None else None

    async def record(self, key: str, value: Any) -> None:
        if self._record is not None:
            self._record["journal"][key] = value
            await self._save()

    def _context_state(self) -> dict[str, Any]:
        return {"budget_tokens": self.context.budget_tokens,
                "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in self.context.messages]}

    def snapshot(self) -> dict[str, Any]:
        """This agent at its last turn boundary, plus the turn in progress (its batch and journal)."""
        record = self._record
        state = self.sm.state
        return {
            "spec": self.spec.model_dump(mode="json", exclude_unset=True), "parent": self.parent, "profile": self.profile,
            "state": str(AgentState.IDLE if state is AgentState.RUNNING else state),
            "turns": self.turns - 1 if record is not None else self.turns,
            "context": record["context"] if record is not None else self._context_state(),
            "open_requests": record["open_requests"] if record is not None
            else [e.model_dump(mode="json") for e in self.open_requests],
            "mailbox": self._queued_state(),
            "seen": list(self.mailbox.recent_ids(_REMEMBER_IDS)),
            "known_outcomes": sorted(self.known_outcomes),
            "turn": None if record is None else {"batch": record["batch"], "journal": record["journal"]},
            "taint": self.taint.dump(),
        }

    def _queued_state(self) -> list[dict[str, Any]]:
        """The unread messages as JSON, each converted once (a paused agent's mailbox may hold
        thousands, and every message delivered to it is saved before it is acknowledged)."""
        cache = self._dumped
        self._dumped = {e.id: cache.get(e.id) or e.model_dump(mode="json") for e in self.mailbox.queued()}
        return list(self._dumped.values())

    def restore(self, state: dict[str, Any]) -> None:
        """Take a :meth:`snapshot` (before :meth:`start`). A turn that was in progress runs again
        with the same batch, answered from its journal as far as it got."""
        self.restored = True
        self.turns = int(state["turns"])
        self.context.budget_tokens = int(state["context"]["budget_tokens"])
        self.context.messages = [ChatMessage.model_validate(m) for m in state["context"]["messages"]]
        self.open_requests = [Envelope.model_validate(e) for e in state["open_requests"]]
        self.known_outcomes = set(state.get("known_outcomes", ()))
        self.taint = Taint.load(state.get("taint"))
        self.mailbox.restore([Envelope.model_validate(e) for e in state["mailbox"]], [MessageId(i) for i in state["seen"]])
        turn = state.get("turn")
        if turn is not None:
            self._replay = [Envelope.model_validate(e) for e in turn["batch"]]
            self._journal = dict(turn["journal"])
            for env in self._replay:
                self.mailbox.remember(env.id)
            self.mailbox.wake()
        to = AgentState(state["state"])
        if to is AgentState.TERMINATED:
            self.sm.state = AgentState.TERMINATED
        elif to is AgentState.PAUSED:
            self.sm.state = AgentState.PAUSED
            self._resumed.clear()
        elif to is AgentState.ERROR:
            self.sm.state = AgentState.ERROR


def _untrusted_source(env: Envelope) -> str:
    """Where a tainted message's content comes from: ``message from lead``, ``task t-1 from lead``,
    ``blackboard plan from lead``."""
    if env.sender == BLACKBOARD and env.data.get("blackboard_key"):
        return f"blackboard {env.data['blackboard_key']} from {env.data.get('author') or '?'}"
    if env.kind in (MessageKind.TASK, MessageKind.NOTICE) and env.data.get("task_id"):
        return f"task {env.data['task_id']} from {env.data.get('by') or env.data.get('created_by') or env.sender}"
    return f"message from {env.sender}"


def _untrusted_text(env: Envelope) -> str:
    """A tainted message's content plus a task's input, a notice's full output or a blackboard entry's value."""
    extra = [env.data[k] for k in ("input", "output", "error", "value") if env.data.get(k) is not None and env.kind is not MessageKind.TEXT]
    return "\n".join([env.content, *(v if isinstance(v, str) else json.dumps(v, default=str) for v in extra)])


_REMEMBER_IDS = 1000
"""Message ids a checkpoint remembers: re-sends after a restart are recent ones."""


def user_message(session_id: SessionId, run_id: RunId, recipient: AgentId, text: str, turn: int | None = None) -> Envelope:
    """A message from the user; ``turn``: the session's user turn it opens (the supervisor numbers them)."""
    return Envelope(session_id=session_id, sender=USER, recipient=recipient, content=text,
                    trace=Trace(run_id=run_id, turn=turn))


def control_message(session_id: SessionId, recipient: AgentId, op: ControlOp) -> Envelope:
    return Envelope(session_id=session_id, sender=SUPERVISOR, recipient=recipient, kind=MessageKind.CONTROL, data={"op": str(op)})


__all__ = ["AgentCore", "control_message", "system_prompt", "user_message"]
