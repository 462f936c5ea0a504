"""An agent's mailbox: ordered, de-duplicated by message id, drained one turn at a time.

Ray async actors run many calls at once; that is not a mailbox. This is: messages that arrive
while a turn runs wait here until the turn ends. Control messages never queue (the agent acts on
them as they arrive).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable

from troupe.runtime.ids import MessageId
from troupe.runtime.messages import Envelope


class Mailbox:
    def __init__(self, *, remember: int = 10_000) -> None:
        self._queue: deque[Envelope] = deque()
        self._seen: OrderedDict[MessageId, None] = OrderedDict()
        self._remember = remember
        self._ready = asyncio.Event()
        self.duplicates = 0
        self.closed_turns: set[int] = set()
        """Cancelled user turns: a late message of one is dropped (:mod:`troupe.runtime.agent.turn_cancel`)."""

    def remember(self, message_id: MessageId) -> bool:
        """Record an id as delivered; False if it already was (a re-delivery)."""
        if message_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[message_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return True

    def put(self, envelope: Envelope) -> bool:
        """Queue a message; returns False (and drops it) if this id was already delivered."""
        if not self.remember(envelope.id) or envelope.trace.turn in self.closed_turns:
            return False
        self._queue.append(envelope)
        self._ready.set()
        return True

    def seen(self, message_id: MessageId) -> bool:
        return message_id in self._seen

    def take_all(self) -> list[Envelope]:
        """Everything unread, oldest first."""
        items = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        return items

    def discard(self, predicate: Callable[[Envelope], bool]) -> int:
        kept = [e for e in self._queue if not predicate(e)]
        dropped = len(self._queue) - len(kept)
        self._queue = deque(kept)
        if not self._queue:
            self._ready.clear()
        return dropped

    async def wait(self) -> None:
        await self._ready.wait()

    def settle(self) -> None:
        """Make :meth:`wait` wait for the next arrival even though messages are queued (a replay whose
        next turn waits for the rest of its recorded batch)."""
        self._ready.clear()

    def wake(self) -> None:
        """Wake a waiter without a message (a control change)."""
        self._ready.set()

    def __len__(self) -> int:
        return len(self._queue)

    # --- checkpoints ------------------------------------------------------------------------
    def queued(self) -> list[Envelope]:
        """The unread messages, oldest first (not taken)."""
        return list(self._queue)

    def recent_ids(self, n: int) -> list[MessageId]:
        """The ids of the ``n`` messages delivered last (enough to recognise re-sends after a restart)."""
        return list(self._seen)[-n:]

    def restore(self, queued: list[Envelope], seen: list[MessageId]) -> None:
        """Take a checkpoint's unread messages and remembered ids (on an empty mailbox)."""
        for message_id in seen:
            self.remember(message_id)
        for envelope in queued:
            self.remember(envelope.id)
            self._queue.append(envelope)
        if self._queue:
            self._ready.set()


__all__ = ["Mailbox"]
