"""Forwarding an operation on a live session to the server process (replica) that holds it.

Behind Ray Serve each replica holds the sessions it created (their handles live in its process), and the
HTTP proxy spreads requests over the replicas. The shared session directory carries a
:class:`ForwardQueue`: every replica that holds sessions registers (one holder id per server process) and
long-polls it for the operations addressed to its sessions (:class:`HolderLoop`); a replica that receives
a write for a session another one holds submits a :class:`ForwardedOp` and awaits its :class:`OpOutcome`
(the HTTP status and JSON body the holder answered, returned as they are).

Nothing waits forever: an operation not answered within its timeout is answered 504 (and taken off the
holder's queue if it was not delivered yet); a holder that has not polled for ``lease_s`` (its process
died) is dropped, with every operation waiting on it answered 409 at once, as are operations submitted
for it afterwards. A holder that stops unregisters. Plain asyncio on one event loop:
:class:`troupe.runtime.server.state.LocalDirectory` holds one in process, the directory actor of
:mod:`troupe.runtime.server.deploy` wraps one in a Ray actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

log = logging.getLogger("troupe.server")
FORWARD_TIMEOUT_S = 30.0
"""How long a replica waits for the holder's answer to a forwarded operation (then 504)."""
POLL_WAIT_S = 5.0
"""How long one long poll of a holder waits for operations."""
LEASE_S = 15.0
"""A holder that has not polled for this long is gone (its replica died): its operations fail at once."""
CHECK_S = 0.5
"""How often a waiting submitter looks whether its holder is still alive."""
FORGET_S = 3600.0
"""A holder silent this long is forgotten with its sessions (its replica is gone for good)."""
RESUME = "POST /api/v1/sessions/{sid}/resume"


class ForwardedOp(BaseModel):
    """One operation on a session, sent to the process that holds it (the access checks were done)."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    session_id: str
    op: str
    """The name of a registered session operation (``troupe.runtime.server.relay``): send, cancel, decide, ..."""
    args: dict[str, Any] = Field(default_factory=dict)
    user: str = ""
    """The user the receiving replica authenticated (recorded by the operation, as a local request's)."""
    sender: str = ""
    """The receiving replica's holder id."""


class OpOutcome(BaseModel):
    """The answer to a forwarded operation: what the holder would have answered over HTTP."""

    status: int
    body: Any = None
    holder: str | None = None
    """The holder that answered (``None``: none did)."""
    sent: bool = True
    """False: no live holder held the session when it was submitted, nothing was sent (the receiving
    replica answers for it itself)."""


class ForwardStats(BaseModel):
    holders: dict[str, int] = Field(default_factory=dict)
    """Live holder id -> sessions it holds."""
    forwarded: int = 0
    answered: int = 0
    timed_out: int = 0
    gone: int = 0


def refusal(status: int, error: str, reason: str, holder: str | None = None) -> OpOutcome:
    return OpOutcome(status=status, body={"error": error, "reason": reason}, holder=holder)


def _gone(op: ForwardedOp, holder: str) -> OpOutcome:
    return refusal(409, f"session {op.session_id} is no longer held by a live server process",
                   f"the replica that held it stopped (the {op.op!r} may or may not have been applied); it was "
                   f"interrupted: {RESUME.format(sid=op.session_id)} to continue it (docs/server.md, 'Replicas')",
                   holder)


@dataclass
class _Holder:
    last_seen: float
    queue: deque[ForwardedOp] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sessions: set[str] = field(default_factory=set)


class ForwardQueue:
    """Holders, the sessions each holds, the operations queued for them and the futures awaiting answers."""

    def __init__(self, *, lease_s: float = LEASE_S, check_s: float = CHECK_S) -> None:
        self.lease_s, self.check_s = lease_s, check_s
        self._holders: dict[str, _Holder] = {}
        self._held_by: dict[str, str] = {}
        self._waiting: dict[str, tuple[str, ForwardedOp, asyncio.Future[OpOutcome]]] = {}
        self.stats = ForwardStats()

    # --- holders ----------------------------------------------------------------------------
    def register(self, holder: str) -> None:
        found = self._holders.setdefault(holder, _Holder(last_seen=time.monotonic()))
        found.last_seen = time.monotonic()

    def unregister(self, holder: str) -> None:
        """Forget ``holder`` and its sessions; every operation waiting on it is answered 409 now."""
        found = self._holders.pop(holder, None)
        if found is None:
            return
        for sid in found.sessions:
            if self._held_by.get(sid) == holder:
                del self._held_by[sid]
        self._fail(holder)
        found.wake.set()

    def _fail(self, holder: str) -> None:
        for to, op, fut in list(self._waiting.values()):
            if to == holder and not fut.done():
                fut.set_result(_gone(op, holder))
                self.stats.gone += 1

    def hold(self, holder: str, session_id: str) -> None:
        if holder not in self._holders:
            self.register(holder)
        self._holders[holder].sessions.add(session_id)
        self._held_by[session_id] = holder

    def release(self, holder: str, session_id: str) -> None:
        if self._held_by.get(session_id) == holder:
            del self._held_by[session_id]
        if holder in self._holders:
            self._holders[holder].sessions.discard(session_id)

    def holder_of(self, session_id: str) -> str | None:
        """The live holder of ``session_id`` (``None``: none holds it, or its holder stopped polling)."""
        self._expire()
        holder = self._held_by.get(session_id)
        return holder if holder is not None and self.alive(holder) else None

    def alive(self, holder: str) -> bool:
        found = self._holders.get(holder)
        return found is not None and time.monotonic() - found.last_seen <= self.lease_s

    def _expire(self) -> None:
        """A holder past its lease is not sent anything and what waits on it fails; it keeps its sessions
        should it poll again (a long pause, not a death) until ``FORGET_S``, then it is forgotten."""
        now = time.monotonic()
        for holder, found in list(self._holders.items()):
            if now - found.last_seen > FORGET_S:
                self.unregister(holder)
            elif now - found.last_seen > self.lease_s:
                self._fail(holder)

    # --- operations -------------------------------------------------------------------------
    async def submit(self, op: ForwardedOp, timeout_s: float = FORWARD_TIMEOUT_S) -> OpOutcome:
        """The holder's answer to ``op``; 409 when its holder is or becomes gone, 504 after ``timeout_s``;
        ``sent`` false when no live holder holds the session (nothing was sent)."""
        holder = self.holder_of(op.session_id)
        if holder is None or holder == op.sender:
            return OpOutcome(status=409, sent=False, body={
                "error": f"session {op.session_id} is not held by a live server process", "reason": ""})
        queue = self._holders[holder]
        fut: asyncio.Future[OpOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[op.id] = (holder, op, fut)
        queue.queue.append(op)
        queue.wake.set()
        self.stats.forwarded += 1
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats.timed_out += 1
                    return refusal(504, f"the server process holding session {op.session_id} did not answer "
                                        f"in {timeout_s:g} s",
                                   "it may be overloaded or stopping; retry, and if the session stays unreachable "
                                   f"{RESUME.format(sid=op.session_id)} (docs/server.md, 'Replicas')", holder)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), min(left, self.check_s))
                except TimeoutError:
                    if not self.alive(holder):
                        self._fail(holder)  # answers ``fut``: gone
        finally:
            self._waiting.pop(op.id, None)
            try:
                queue.queue.remove(op)  # never delivered: it is not run after its sender gave up
            except ValueError:
                pass

    async def poll(self, holder: str, wait_s: float = POLL_WAIT_S, max_ops: int = 64) -> list[ForwardedOp]:
        """The operations queued for ``holder`` (waits up to ``wait_s`` for one); a poll keeps it alive."""
        self.register(holder)
        found = self._holders[holder]
        if not found.queue:
            found.wake.clear()
            try:
                await asyncio.wait_for(found.wake.wait(), wait_s)
            except TimeoutError:
                pass
        if self._holders.get(holder) is not found:  # unregistered meanwhile
            return []
        found.last_seen = time.monotonic()
        out: list[ForwardedOp] = []
        while found.queue and len(out) < max_ops:
            op = found.queue.popleft()
            if op.id in self._waiting:
                out.append(op)
        return out

    def complete(self, op_id: str, outcome: OpOutcome) -> bool:
        """Hand ``outcome`` to the submitter of ``op_id`` (False: it gave up already)."""
        entry = self._waiting.get(op_id)
        if entry is None or entry[2].done():
            return False
        entry[2].set_result(outcome)
        self.stats.answered += 1
        return True

    def snapshot(self) -> ForwardStats:
        self._expire()
        return self.stats.model_copy(update={"holders": {h: len(v.sessions) for h, v in self._holders.items()
                                                         if self.alive(h)}})


class ForwardChannel(Protocol):
    """What a holder needs of the shared directory."""

    async def register(self, holder: str) -> None: ...

    async def unregister(self, holder: str) -> None: ...

    async def poll(self, holder: str, wait_s: float) -> list[ForwardedOp]: ...

    async def complete(self, op_id: str, outcome: OpOutcome) -> None: ...


Execute = Callable[[ForwardedOp], Awaitable[OpOutcome]]


class HolderLoop:
    """A holder's side: poll the channel, run each operation (concurrently) with ``execute``, answer it."""

    def __init__(self, channel: ForwardChannel, holder: str, execute: Execute, *, wait_s: float = POLL_WAIT_S,
                 retry_s: float = 1.0) -> None:
        self.channel, self.holder, self.execute = channel, holder, execute
        self.wait_s, self.retry_s = wait_s, retry_s
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"troupe-holder-{self.holder}")

    async def stop(self) -> None:
        """Stop polling, cancel the operations under way, unregister (what waits on this holder fails now)."""
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        try:
            await asyncio.wait_for(self.channel.unregister(self.holder), 10)
        except Exception as e:
            log.warning("forwarding: unregistering holder %s: %s", self.holder, e)

    async def _run(self) -> None:
        while True:
            try:
                ops = await self.channel.poll(self.holder, self.wait_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("forwarding: polling for holder %s: %s", self.holder, e)
                await asyncio.sleep(self.retry_s)
                continue
            for op in ops:
                task = asyncio.create_task(self._do(op))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _do(self, op: ForwardedOp) -> None:
        try:
            outcome = await self.execute(op)
        except Exception as e:
            log.warning("forwarding: %s on session %s: %s", op.op, op.session_id, e, exc_info=True)
            outcome = refusal(500, f"{op.op} on session {op.session_id} failed in its server process", str(e),
                              self.holder)
        try:
            await self.channel.complete(op.id, outcome)
        except Exception as e:
            log.warning("forwarding: answering %s: %s", op.id, e)


__all__ = ["FORWARD_TIMEOUT_S", "ForwardChannel", "ForwardQueue", "ForwardStats", "ForwardedOp", "HolderLoop",
           "OpOutcome", "refusal"]
