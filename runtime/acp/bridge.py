"""One ACP session <-> one Troupe conversation.

An ACP session is a Troupe session opened with ``conversation=True``: each ``session/prompt`` is a user
turn; its events go to the client as ``session/update`` notifications (:mod:`.mapping`) while the turn
runs; an ``approval.requested`` becomes a ``session/request_permission`` whose answer approves or denies
the call. ``session/cancel`` cancels the turn under way (``Session.cancel_turn``: its model and tool calls
stop, its approvals are denied, its open tasks cancelled): the prompt answers ``cancelled`` once the turn's
last events (its ``turn.cancelled`` included) were sent, and the next prompt is the next turn of the same
Troupe session, with the cancelled turn in the team's context (docs/acp.md).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Protocol

from acp import RequestError
from acp.schema import AgentMessageChunk, AllowedOutcome, PermissionOption, PromptResponse, TextContentBlock

from troupe.runtime.acp import elicitation
from troupe.runtime.acp.mapping import StopReason, Update, UpdateMapper
from troupe.runtime.config import TeamConfig
from troupe.runtime.events import Event

log = logging.getLogger("troupe.acp")

ALLOW, REJECT = "allow", "reject"
OPTIONS = [PermissionOption(option_id=ALLOW, name="Allow once", kind="allow_once"),
           PermissionOption(option_id=REJECT, name="Reject", kind="reject_once")]


class ClientPort(Protocol):
    """What the bridge needs of the ACP connection to the client."""

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None: ...

    async def request_permission(self, session_id: str, tool_call: Any, options: list[PermissionOption],
                                 **kwargs: Any) -> Any: ...


class SessionBridge:
    def __init__(self, acp_id: str, troupe: Any, team: TeamConfig, client: ClientPort, *,
                 placement: str | None = None) -> None:
        self.acp_id = acp_id
        self.troupe = troupe
        self.team = team
        self.client = client
        self.placement = placement
        self.session: Any = None
        self.mapper: UpdateMapper | None = None
        self.sent_turns = 0
        self._pump: asyncio.Task[None] | None = None
        self._seen_turns: set[int] = set()
        self._finished: str | None = None
        self._progress = asyncio.Condition()
        self._permissions: set[asyncio.Task[None]] = set()
        self._cancelled = False
        self._lock = asyncio.Lock()
        self.elicitation_modes: set[str] = set()
        """The client's ``elicitation`` capability (``form``, ``url``): what ``elicitation/create`` may ask."""

    # --- the Troupe session ---------------------------------------------------------------------
    async def _open(self) -> None:
        if self.session is not None:
            await self._close_session()
        self.session = await self.troupe.open(self.team, placement=self.placement, stream_tokens=True,
                                              conversation=True)
        workspace = self.team.workspace.path_for(str(self.session.id))
        self.mapper = UpdateMapper(entry=str(self.team.entry), workspace=Path(workspace))
        self.sent_turns, self._seen_turns, self._finished = 0, set(), None
        self._pump = asyncio.get_running_loop().create_task(self._follow(self.session, self.mapper))
        log.info("ACP session %s: Troupe session %s", self.acp_id, self.session.id)

    async def _follow(self, session: Any, mapper: UpdateMapper) -> None:
        try:
            async for event in session.events():
                await self._forward(event, mapper)
        except Exception:  # never let a broken pump leave a prompt waiting forever
            log.exception("following session %s failed", session.id)
        finally:
            async with self._progress:
                self._finished = self._finished or "failed"
                self._progress.notify_all()

    async def _forward(self, event: Event, mapper: UpdateMapper) -> None:
        for update in mapper.feed(event):
            await self._send(update)
        if event.type in ("approval.requested", "elicitation.requested"):
            task = asyncio.get_running_loop().create_task(
                self._ask(event, mapper) if event.type == "approval.requested" else self._elicit(event, mapper))
            self._permissions.add(task)
            task.add_done_callback(self._permissions.discard)
        if event.type in ("turn.finished", "turn.cancelled", "session.finished"):
            async with self._progress:
                if event.type != "session.finished":
                    self._seen_turns.add(int(event.data.get("turn") or 0))
                else:
                    self._finished = str(event.status)
                self._progress.notify_all()

    async def _send(self, update: Update) -> None:
        await self.client.session_update(session_id=self.acp_id, update=update)

    async def _ask(self, event: Event, mapper: UpdateMapper) -> None:
        """An approval the team waits for: ask the client; its answer (cancelled: denied) decides it."""
        approval_id = str(event.data.get("id"))
        try:
            answer = await self.client.request_permission(session_id=self.acp_id, tool_call=mapper.tool_call(event, event.data),
                                                          options=OPTIONS)
            outcome = answer.outcome
            allowed = isinstance(outcome, AllowedOutcome) and outcome.option_id == ALLOW
            reason = "allowed by the ACP client" if allowed else (
                "rejected by the ACP client" if isinstance(outcome, AllowedOutcome) else "the ACP client cancelled the request")
        except Exception as e:  # the client failed to answer: a refusal, never a silent approval
            allowed, reason = False, f"the ACP client did not answer ({type(e).__name__}: {e})"
        session = self.session
        if session is None or self._finished is not None:
            return
        try:
            if allowed:
                await session.approve(approval_id, reason)
            else:
                await session.deny(approval_id, reason)
        except Exception as e:  # decided meanwhile (timeout, the session ended)
            log.info("approval %s not decided by the client: %s", approval_id, e)

    async def _elicit(self, event: Event, mapper: UpdateMapper) -> None:
        """An MCP server's request for input: ``elicitation/create`` or a permission request (:mod:`.elicitation`)."""
        if self.session is not None and self._finished is None:
            await elicitation.ask(self.client, self.acp_id, self.session, event, mapper.tool_call(event, event.data),
                                  self.elicitation_modes, OPTIONS, ALLOW)

    async def _close_session(self) -> None:
        session, pump = self.session, self._pump
        self.session, self._pump = None, None
        for task in list(self._permissions):
            task.cancel()
        if session is not None:
            if self._finished is None:
                await session.cancel("the ACP session was closed")
            if pump is not None:
                await asyncio.wait([pump], timeout=10)
                pump.cancel()
            await session.close()

    # --- prompts --------------------------------------------------------------------------------
    async def prompt(self, text: str) -> PromptResponse:
        async with self._lock:  # one turn at a time, as the protocol has it
            self._cancelled = False
            if self.session is None or self._finished is not None:
                await self._open()
            assert self.mapper is not None and self.session is not None
            mapper, session = self.mapper, self.session
            mapper.begin_turn()
            await session.send(text)
            self.sent_turns += 1
            turn = self.sent_turns
            result = await session.result()
            async with self._progress:  # every event of the turn sent before the answer
                await asyncio.wait_for(self._progress.wait_for(
                    lambda: turn in self._seen_turns or self._finished is not None), timeout=30)
            status = "cancelled" if self._cancelled else str(result.status)
            if status == "failed":
                raise RequestError.internal_error({"message": f"the team failed: {result.error}",
                                                   "troupe": {"session_id": str(session.id)}})
            if mapper.streamed == 0 and result.reply and status != "cancelled":  # nothing streamed: send the reply whole
                await self._send(AgentMessageChunk(session_update="agent_message_chunk",
                                                   content=TextContentBlock(type="text", text=result.reply), field_meta={"troupe": {"agent": str(self.team.entry)}}))
            stop: StopReason = mapper.stop_reason(status)
            return PromptResponse(stop_reason=stop, field_meta={"troupe": {
                "session_id": str(session.id), "run_id": str(session.run_id), "turn": turn, "status": status}})

    async def cancel(self) -> None:
        """``session/cancel``: stop the running turn (the session goes on) and deny what waits for approval."""
        session = self.session
        if session is None or self._finished is not None or not self._lock.locked():
            return  # no turn under way: nothing to cancel (an idle conversation keeps its context)
        self._cancelled = True
        await session.cancel_turn("cancelled by the ACP client (session/cancel)")

    async def close(self) -> None:
        await self._close_session()


__all__ = ["OPTIONS", "ClientPort", "SessionBridge"]
