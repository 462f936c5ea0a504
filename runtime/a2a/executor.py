"""A team behind the A2A protocol: ``a2a-sdk``'s :class:`AgentExecutor` over Troupe conversation sessions.

One A2A context is one Troupe session (a conversation: ``troupe chat``'s kind), opened by the context's first
message; each A2A task is one user turn of it. While the turn runs, the session's events become the task's
status updates (``working`` with what the agents say to each other, the tasks they create and the tools they
call); an approval the session waits for makes the task ``input-required`` and the client's next message on
that task decides it (:func:`answer`: a data part ``{"approve": true|false, "reason": ...}``, else its words:
``approve``/``yes``/``ok`` approve, anything else denies); an MCP server's request for input (elicitation) does the
same, and the client's next message on the task answers its form (:mod:`troupe.runtime.a2a.elicitation`). The turn's reply completes the task,
as its status message and a ``reply`` artifact, and the blackboard entries written during the turn come as
artifacts named by their keys. ``tasks/cancel`` cancels the task's turn (``Session.cancel_turn``: its model and
tool calls stop, its approvals are denied, the tasks it created are cancelled); the session, the A2A context,
stays for the next message, with the cancelled turn in the team's context. Plain asyncio; the session is any :class:`~troupe.runtime.session.handle.Session` (local or Ray).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from a2a.helpers import get_message_text, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Message, Part
from google.protobuf.json_format import MessageToDict

from troupe.runtime.a2a.elicitation import Asked, elicitation_request, read_reply
from troupe.runtime.errors import TroupeError
from troupe.runtime.events import Event
from troupe.runtime.session.handle import Session
from troupe.runtime.session.supervisor import SessionResult, SessionStatus

log = logging.getLogger("troupe.a2a")

APPROVE_WORDS = frozenset({"approve", "approved", "yes", "y", "ok", "allow"})
PREVIEW = 500
DRAIN_S = 2.0
"""How long a finished turn's last events may take to arrive."""
TURN_ENDS = frozenset({"turn.finished", "turn.cancelled", "session.finished"})


@dataclass
class Conversation:
    """One A2A context: its session, and what the current turn is waiting on."""

    session: Session
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None
    turn: asyncio.Task[SessionResult] | None = None
    """The running turn's result (kept while the task waits for input)."""
    task: str | None = None
    """The id of the A2A task the running turn is."""
    cancelling: bool = False
    closed: bool = False
    """The running turn's last event (``turn.finished``/``turn.cancelled``) was read: nothing left to drain."""
    """``tasks/cancel`` is ending the turn (it, not the task's follower, sends the task's end)."""
    approval: str | None = None
    """The approval the task waits for."""
    form: Asked | None = None
    """The MCP elicitation the task waits for."""
    waiting: str | None = None
    """The id of the A2A task that is ``input-required`` (its next message answers the approval)."""
    seen: dict[str, int] = field(default_factory=dict)
    """Blackboard key -> version already sent as an artifact."""
    ended: bool = False


def describe(event: Event) -> str | None:
    """A status line for a session event the A2A client should see (``None``: not shown)."""
    p = json.loads(event.payload or "{}")
    who = event.agent or "?"
    if event.type == "message.sent" and p.get("to") != "user":
        return f"{who} -> {p.get('to') or p.get('topic')}: {str(p.get('content', ''))[:PREVIEW]}"
    if event.type == "task.created":
        return f"{who} created task {event.task_id or ''} for {p.get('assignee') or 'anyone'}: {str(p.get('goal', ''))[:PREVIEW]}"
    if event.type == "task.status":
        return f"task {event.task_id or ''}: {p.get('to', '')}"
    if event.type == "tool.call":
        return f"{who} calls {event.tool or p.get('name', '')}"
    return None


def answer(message: Message) -> tuple[bool, str]:
    """An approval's answer: ``(approved, what the client said)``. A data part with a boolean ``approve`` (or
    ``approved``) decides, its ``reason`` (else the message's text) said why; without one, the text's words do
    (:data:`APPROVE_WORDS` approve; anything else, silence included, denies)."""
    text = get_message_text(message).strip()
    for part in message.parts:
        if part.WhichOneof("content") != "data":
            continue
        data = MessageToDict(part)["data"]
        if isinstance(data, dict):
            flag = data.get("approve", data.get("approved"))
            if isinstance(flag, bool):
                return flag, str(data.get("reason") or text or json.dumps(data))
    return text.lower().rstrip(".!") in APPROVE_WORDS, text


def approval_request(event: Event) -> tuple[str, list[Part]]:
    """The approval's id and the ``input-required`` message's parts for an ``approval.requested`` event: a line
    for people, and a data part for programs (what is asked, and how to answer)."""
    p = json.loads(event.payload or "{}")
    tool = p.get("tool") or event.tool or ""
    line = (f"{event.agent} wants to call {tool} with {str(p.get('arguments', ''))[:PREVIEW]}; "
            "answer 'approve' to let it run, anything else denies it")
    data = {"approval_id": p.get("id") or "", "agent": event.agent or "", "tool": tool,
            "arguments": str(p.get("arguments", ""))[:2000], "timeout_s": p.get("timeout_s"),
            "answer": {"approve": "boolean", "reason": "string (optional)"}}
    part = Part()
    part.data.struct_value.update(data)
    part.media_type = "application/json"
    return str(p.get("id") or ""), [Part(text=line), part]


def _caller(context: RequestContext) -> str:
    """Who sent the request: the API key's user (``local`` without keys), for the record of a decision."""
    user = context.call_context.user if context.call_context is not None else None
    return user.user_name if user is not None and user.is_authenticated else ""


class TeamExecutor(AgentExecutor):
    """Runs A2A tasks as turns of Troupe sessions opened by ``open_session(owner)`` (one per context; the owner is
    the user of the API key that sent the context's first message, ``None`` when unknown)."""

    def __init__(self, open_session: Callable[[str | None], Awaitable[Session]], *,
                 turn_timeout_s: float | None = None) -> None:
        self.open_session = open_session
        self.turn_timeout_s = turn_timeout_s
        self.conversations: dict[str, Conversation] = {}

    async def _conversation(self, context_id: str, owner: str | None) -> Conversation:
        conv = self.conversations.get(context_id)
        if conv is None or conv.ended:
            conv = Conversation(session=await self.open_session(owner))
            conv.pump = asyncio.get_running_loop().create_task(self._pump(conv), name=f"a2a-events:{context_id}")
            self.conversations[context_id] = conv
        return conv

    @staticmethod
    async def _pump(conv: Conversation) -> None:
        try:
            async for event in conv.session.events():
                conv.events.put_nowait(event)
        except Exception:  # the session closed under it
            log.debug("event tail of session %s ended", conv.session.id, exc_info=True)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)  # an executor's first event is the task
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = get_message_text(context.message)
        conv = self.conversations.get(task.context_id)
        if conv is not None and conv.waiting == task.id and conv.turn is not None:  # the input it asked for
            if conv.form is not None:
                if not await self._fill(conv, context, updater):  # no answer, or a misfit: asked again
                    return
            else:
                await self._decide(conv, context, updater)
            await self._follow(conv, updater)
            return
        conv = await self._conversation(task.context_id, _caller(context) or None)
        if conv.turn is not None:  # one turn at a time per session
            await updater.reject(updater.new_agent_message([Part(text=(
                "another task of this context is still running (or waiting for input); wait for it, "
                "answer it, or cancel it first"))]))
            return
        await updater.start_work()
        await conv.session.send(text)
        conv.task, conv.closed = task.id, False
        conv.turn = asyncio.get_running_loop().create_task(conv.session.result(timeout=self.turn_timeout_s))
        await self._follow(conv, updater)

    async def _decide(self, conv: Conversation, context: RequestContext, updater: TaskUpdater) -> None:
        """Answer the approval the task waits for with the client's message (already decided: say so, go on)."""
        assert context.message is not None and conv.approval is not None
        approved, said = answer(context.message)
        who = _caller(context)
        reason = f"{'approved' if approved else 'denied'} by the A2A client{f' ({who})' if who else ''}: {said[:200]}"
        approval, conv.approval, conv.waiting = conv.approval, None, None
        decide = conv.session.approve if approved else conv.session.deny
        try:
            await decide(approval, reason)
        except TroupeError as e:  # it timed out (denied) or the turn ended while the task waited
            log.info("approval %s: %s", approval, e)
            await updater.start_work(updater.new_agent_message([Part(text=(
                f"approval {approval} was already decided (it timed out, or its turn ended); the answer was not used"))]))
            return
        await updater.start_work(updater.new_agent_message([Part(text=reason)]))

    async def _fill(self, conv: Conversation, context: RequestContext, updater: TaskUpdater) -> bool:
        """Answer the elicitation the task waits for with the client's message; ``False``: it was no answer or does
        not fit the form, and the task asks again (still ``input-required``). Already answered: say so, go on."""
        assert context.message is not None and conv.form is not None
        asked = conv.form
        reply = read_reply(context.message, asked)
        if reply.problem:
            await updater.requires_input(updater.new_agent_message(asked.parts(reply.problem)))
            return False
        who = _caller(context)
        reason = f"{reply.action} by the A2A client{f' ({who})' if who else ''}: {reply.said[:200]}"
        try:
            await conv.session.answer_elicitation(asked.id, reply.action, reply.content, reason)
        except TroupeError as e:  # the session refused the form, or it timed out (declined) or its turn ended
            if await self._still_pending(conv.session.elicitations, asked.id):
                await updater.requires_input(updater.new_agent_message(asked.parts(str(e))))
                return False
            log.info("elicitation %s: %s", asked.id, e)
            conv.form = conv.waiting = None
            await updater.start_work(updater.new_agent_message([Part(text=(
                f"elicitation {asked.id} was already answered (it timed out, or its turn ended); the answer was not used"))]))
            return True
        conv.form = conv.waiting = None
        await updater.start_work(updater.new_agent_message([Part(text=reason)]))
        return True

    async def _follow(self, conv: Conversation, updater: TaskUpdater) -> None:
        """Status updates until the turn ends (then the task's end) or waits for an approval (``input-required``);
        a turn ended by ``tasks/cancel`` is left to :meth:`cancel`."""
        turn = conv.turn
        assert turn is not None
        while not turn.done():
            getter = asyncio.ensure_future(conv.events.get())
            try:
                await asyncio.wait([getter, turn], return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # cancelled (tasks/cancel): an orphan getter would swallow the next event
                getter.cancel()
                raise
            if not getter.done():
                getter.cancel()
                continue
            event = getter.result()
            conv.closed = conv.closed or event.type in TURN_ENDS
            if event.type == "approval.requested":
                approval, parts = approval_request(event)
                if not await self._still_pending(conv.session.approvals, approval):  # the team's policy decided it
                    continue
                conv.approval, conv.waiting = approval, updater.task_id
                await updater.requires_input(updater.new_agent_message(parts))
                return
            if event.type == "elicitation.requested":
                asked = elicitation_request(event)
                if not await self._still_pending(conv.session.elicitations, asked.id):  # the policy answered it
                    continue
                conv.form, conv.waiting = asked, updater.task_id
                await updater.requires_input(updater.new_agent_message(asked.parts()))
                return
            line = describe(event)
            if line is not None:
                await updater.start_work(updater.new_agent_message([Part(text=line)]))
        if conv.cancelling or conv.turn is not turn:
            return
        result = turn.result()
        conv.turn = conv.task = None
        await self._drain(conv, updater)
        await self._finish(conv, updater, result)

    @staticmethod
    async def _still_pending(pending: Callable[[], Awaitable[list[dict[str, Any]]]], request: str) -> bool:
        """Whether the approval or elicitation ``request`` still waits (``pending``: the session's lister)."""
        try:
            return any(a.get("id") == request for a in await pending())
        except Exception:
            log.debug("listing what waits for %s", request, exc_info=True)
            return True

    @staticmethod
    async def _drain(conv: Conversation, updater: TaskUpdater | None) -> None:
        """The turn's events still on their way (its ``turn.finished`` or ``turn.cancelled`` closes them), as
        status updates (``updater`` ``None``: dropped)."""
        try:
            async with asyncio.timeout(DRAIN_S):
                while not conv.closed:
                    event = await conv.events.get()
                    if event.type in TURN_ENDS:
                        conv.closed = True
                        return
                    if updater is not None and (line := describe(event)) is not None:
                        await updater.start_work(updater.new_agent_message([Part(text=line)]))
        except TimeoutError:
            return

    async def _finish(self, conv: Conversation, updater: TaskUpdater, result: SessionResult) -> None:
        ok = result.status in (SessionStatus.RUNNING, SessionStatus.COMPLETED)
        if ok and result.turns and result.turns[-1].cancelled:  # cancelled by another path (tasks/cancel ends it too)
            await updater.cancel(updater.new_agent_message([Part(text=result.error or "the turn was cancelled")]))
        elif ok:
            await self._artifacts(conv, updater)
            if result.reply:
                await updater.add_artifact([Part(text=result.reply)], name="reply")
            await updater.complete(updater.new_agent_message([Part(text=result.reply or "")]))
        else:
            conv.ended = True
            text = f"the session ended {result.status}: {result.error or 'no reply'}"
            message = updater.new_agent_message([Part(text=text)])
            await (updater.cancel(message) if result.status is SessionStatus.CANCELLED else updater.failed(message))
        if result.status is not SessionStatus.RUNNING:
            conv.ended = True

    async def _artifacts(self, conv: Conversation, updater: TaskUpdater) -> None:
        """Blackboard entries new or changed since the last turn, one artifact each (named by key)."""
        try:
            entries = await conv.session.blackboard("")
        except Exception:
            log.debug("reading the blackboard of session %s", conv.session.id, exc_info=True)
            return
        for e in entries:
            if conv.seen.get(e.key) == e.version:
                continue
            conv.seen[e.key] = e.version
            value = e.value
            part = Part(text=value) if isinstance(value, str) else Part(text=json.dumps(value, default=str))
            await updater.add_artifact([part], name=e.key, metadata={
                "source": "blackboard", "version": e.version, "author": str(e.author), "kind": str(e.kind)})

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """``tasks/cancel``: cancel the task's turn (when it is the one running); the context's session goes on."""
        conv = self.conversations.get(context.context_id or "")
        text = "cancelled"
        if conv is not None and not conv.ended and conv.turn is not None and conv.task == context.task_id:
            turn, conv.cancelling = conv.turn, True
            try:
                done = await conv.session.cancel_turn("cancelled by the A2A client (tasks/cancel)")
                text = f"cancelled turn {done.turn} of session {conv.session.id}; the context takes the next message"
            except TroupeError:  # not a turn it can cancel: the whole session, as a last resort
                log.warning("cancelling a turn of session %s", conv.session.id, exc_info=True)
                conv.ended = True
                await conv.session.cancel("cancelled by the A2A client (tasks/cancel)")
                text = "cancelled; the session was cancelled (a later message in this context opens a new one)"
            try:
                await asyncio.wait_for(asyncio.shield(turn), DRAIN_S)  # the cancelled turn's end
            except (TimeoutError, TroupeError):
                log.debug("the cancelled turn of session %s", conv.session.id, exc_info=True)
            conv.turn = conv.task = conv.approval = conv.form = conv.waiting = None
            await self._drain(conv, None)  # its last events are not the next turn's
            conv.cancelling = False
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel(updater.new_agent_message([Part(text=text)]))

    async def close(self) -> None:
        """End every conversation and close its session (cancelled when a turn still runs)."""
        for conv in list(self.conversations.values()):
            try:
                if conv.turn is not None and not conv.turn.done():
                    await conv.session.cancel("the A2A server is stopping")
                elif not conv.ended:
                    await conv.session.end()  # the conversation is over: completed, with its turns
                await conv.session.close()
            except Exception:
                log.warning("closing session %s", conv.session.id, exc_info=True)
            if conv.pump is not None:
                conv.pump.cancel()
        self.conversations.clear()


__all__ = ["APPROVE_WORDS", "Conversation", "TeamExecutor", "answer", "approval_request", "describe"]
