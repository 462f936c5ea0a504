"""A checkpointed session's share of one host: when to save, what was applied, what is unsent.

The rule that makes a crash lose nothing: *save before acknowledging*. A message is acknowledged
(its ``deliver`` returns) only once the recipient's checkpoint holds it; a mutating service call
(a blackboard write, a task change, a budget charge) returns only once the service's checkpoint
holds its effect. Ray re-sends the calls that were in flight to a restarted actor, so re-sends
are normal and are recognised:

- a message by its id (the restored mailbox remembers recent ids);
- a service call by its *request id*, which the caller derives from an :class:`~troupe.runtime.ids.IdScope`
  (a turn, a tool call): the same call in a replayed turn has the same id, and the answer recorded
  when it was first applied is returned instead of applying it twice.

Notices a service produced (a task finished, a subscribed key changed) wait in its *outbox*, which
is part of its checkpoint, until the recipient acknowledges them; a restored service sends them again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from troupe.runtime.agent.core import AgentCore
from troupe.runtime.ids import BLACKBOARD, MEMORY, SUPERVISOR, TASKS, AgentId, MessageId, SessionId
from troupe.runtime.memory.service import MemoryService
from troupe.runtime.messages import Envelope
from troupe.runtime.session.blackboard import Blackboard
from troupe.runtime.session.supervisor import Supervisor
from troupe.runtime.session.tasks import TaskRegistry
from troupe.runtime.storage.checkpoint import ActorCheckpoint, ActorKind, CheckpointStore, Saver, portable, revive

REQUEST_ID: Final = "_rid"
"""The keyword that carries a service call's request id (taken off before the method sees it)."""

MUTATING: Final[dict[AgentId, frozenset[str]]] = {
    BLACKBOARD: frozenset({"put", "subscribe", "unsubscribe"}),
    TASKS: frozenset({"create", "update", "assign", "cancel", "cancel_turn"}),
    MEMORY: frozenset({"remember", "update", "forget"}),
    SUPERVISOR: frozenset({"start", "charge", "agent_failed", "cancel", "decide", "resumed", "say", "end", "cancel_turn"}),
}
"""Service methods that change state: saved before they return, and answered once per request id."""

_REMEMBER_REQUESTS: Final = 2_000


def kind_of(guest: Any) -> ActorKind:
    if isinstance(guest, AgentCore):
        return "agent"
    if isinstance(guest, Blackboard):
        return "blackboard"
    if isinstance(guest, TaskRegistry):
        return "tasks"
    if isinstance(guest, Supervisor):
        return "supervisor"
    if isinstance(guest, MemoryService):
        return "memory"
    raise TypeError(f"no checkpoint for a {type(guest).__name__}")


class Durability:
    """Savers, applied requests and outboxes of one session's logical actors on one host."""

    def __init__(self, store: CheckpointStore, session_id: SessionId,
                 before_save: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self._before_save = before_save
        self.savers: dict[AgentId, Saver] = {}
        self.applied: dict[AgentId, OrderedDict[str, Any]] = {}
        self.outbox: dict[AgentId, dict[MessageId, Envelope]] = {}
        self.inbox_files: dict[AgentId, dict[MessageId, str]] = {}
        """Inbox files written since each agent's last checkpoint (cleared once one covers them)."""
        self._covered: dict[AgentId, list[MessageId]] = {}
        self._incoming: dict[AgentId, list[tuple[Envelope, asyncio.Future[None]]]] = {}
        self._writers: dict[AgentId, asyncio.Task[None]] = {}
        self._unreleased: list[Envelope] = []

    # --- saving -----------------------------------------------------------------------------
    def track(self, name: AgentId, guest: Any, restored: ActorCheckpoint | None = None) -> None:
        """Start saving ``guest``; ``restored`` (its checkpoint) brings back its applied requests and outbox."""
        kind = kind_of(guest)
        if restored is not None:
            self.applied[name] = OrderedDict(restored.applied)
            self.outbox[name] = {e.id: e for e in restored.outbox}

        def snapshot(seq: int) -> ActorCheckpoint:
            self._covered[name] = list(self.inbox_files.get(name, ()))  # in this snapshot's mailbox
            return ActorCheckpoint(
                session_id=self.session_id, name=str(name), kind=kind, seq=seq, saved_at=datetime.now(UTC),
                state=guest.snapshot(), applied=dict(self.applied.get(name, {})),
                outbox=list(self.outbox.get(name, {}).values()),
            )

        self.savers[name] = Saver(self.store, snapshot, self._before_save, seq=restored.seq if restored else 0)
        if isinstance(guest, AgentCore):
            saver = self.savers[name]
            guest.save_with(saver.save)

    async def save(self, name: AgentId) -> None:
        saver = self.savers.get(name)
        if saver is None:
            return
        await saver.save()
        files = self.inbox_files.get(name, {})
        covered = {files.pop(i) for i in self._covered.pop(name, ()) if i in files}
        done = sorted(covered - set(files.values()))  # files all of whose messages the checkpoint holds
        if done:
            await asyncio.to_thread(self.store.clear_inbox, str(self.session_id), str(name), done)

    async def settled(self, name: AgentId) -> None:
        """Wait until the changes ``name`` has made so far are on storage (see :meth:`Saver.settled`)."""
        saver = self.savers.get(name)
        if saver is not None:
            await saver.settled()

    async def receive(self, agent: AgentId, envelope: Envelope) -> None:
        """Make a message delivered to ``agent`` durable: in its inbox, until its next checkpoint.
        Messages that arrive while an inbox write is under way go together in the next one."""
        waiting = self._incoming.setdefault(agent, [])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append((envelope, done))
        writer = self._writers.get(agent)
        if writer is None or writer.done():
            self._writers[agent] = asyncio.get_running_loop().create_task(self._write_inbox(agent))
        await asyncio.shield(done)

    async def _write_inbox(self, agent: AgentId) -> None:
        waiting = self._incoming[agent]
        while waiting:
            batch, waiting[:] = list(waiting), []
            envelopes = [e for e, _ in batch]
            try:
                name = await asyncio.to_thread(self.store.add_to_inbox, str(self.session_id), str(agent), envelopes)
            except Exception as e:  # noqa: BLE001  (each sender hears of it: its message was not acknowledged)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            files = self.inbox_files.setdefault(agent, {})
            for envelope, done in batch:
                files[envelope.id] = name
                if not done.done():
                    done.set_result(None)

    # --- requests ---------------------------------------------------------------------------
    def answered(self, target: AgentId, request_id: str) -> tuple[bool, Any]:
        """``(True, answer)`` when this request was already applied (a re-send), else ``(False, None)``."""
        applied = self.applied.get(target)
        if applied is None or request_id not in applied:
            return False, None
        return True, revive(applied[request_id])

    def remember(self, target: AgentId, request_id: str, answer: Any) -> None:
        applied = self.applied.setdefault(target, OrderedDict())
        applied[request_id] = portable(answer)
        while len(applied) > _REMEMBER_REQUESTS:
            applied.popitem(last=False)

    # --- outboxes ---------------------------------------------------------------------------
    def hold(self, sender: AgentId, envelope: Envelope) -> None:
        """Keep a notice in ``sender``'s outbox; it is sent once released (after the next save)."""
        self.outbox.setdefault(sender, {})[envelope.id] = envelope
        self._unreleased.append(envelope)

    def releasable(self) -> list[Envelope]:
        """Notices held since the last call, to send now that a checkpoint holds what they tell of
        (a notice sent first could reach its recipient about a change a crash then undid)."""
        out, self._unreleased = self._unreleased, []
        return out

    def sent(self, sender: AgentId, envelope: Envelope) -> None:
        self.outbox.get(sender, {}).pop(envelope.id, None)

    def unsent(self, names: Iterable[AgentId]) -> list[Envelope]:
        return [e for n in names for e in self.outbox.get(n, {}).values()]

    # --- loading ----------------------------------------------------------------------------
    def load(self, roots: Iterable[AgentId]) -> dict[AgentId, ActorCheckpoint]:
        """The checkpoints of ``roots`` and of their children (``worker.helper`` lives with ``worker``)."""
        wanted = set(map(str, roots))
        return {AgentId(name): cp for name, cp in self.store.load_actors(str(self.session_id)).items()
                if name in wanted or name.split(".", 1)[0] in wanted}

    def load_inbox(self, agent: AgentId) -> list[Envelope]:
        """Messages ``agent`` acknowledged after its last checkpoint (to deliver again on restore;
        its next checkpoint clears them)."""
        found = self.store.inbox(str(self.session_id), str(agent))
        self.inbox_files.setdefault(agent, {}).update((e.id, name) for name, e in found)
        return [e for _, e in found]


__all__ = ["MUTATING", "REQUEST_ID", "Durability", "kind_of"]
