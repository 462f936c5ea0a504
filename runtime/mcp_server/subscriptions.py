"""``resources/subscribe`` / ``resources/unsubscribe``: a client subscribed to a session's
blackboard (all of it or one key) or its task tree gets ``notifications/resources/updated`` when
it changes, and once more when the session goes away (a read then fails: the session was closed).

One watcher task polls the subscribed session resources every :data:`POLL_S` seconds (the same
reads the tools make, so it works the same in ``--local`` and on Ray) and notifies each subscriber
whose resource's content changed. Other resources (the static ones) are accepted and remembered,
never notified. A subscriber whose connection is gone is dropped at the first failed send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from troupe.runtime.mcp_server.resources import SessionResource, parse_uri

log = logging.getLogger("troupe.mcp")

POLL_S = 0.25


class Subscriber(Protocol):
    async def send_resource_updated(self, uri: str) -> Any: ...


Reader = Callable[[SessionResource], Awaitable[str]]


class Subscriptions:
    """Who is subscribed to which URI, and the watcher that notifies them."""

    def __init__(self, read: Reader, *, poll_s: float = POLL_S) -> None:
        self._read = read
        self.poll_s = poll_s
        self._subscribers: dict[str, dict[int, Subscriber]] = {}
        self._seen: dict[str, str | None] = {}
        self._watcher: asyncio.Task[None] | None = None

    def uris(self) -> list[str]:
        return sorted(self._subscribers)

    async def subscribe(self, uri: str, key: object, subscriber: Subscriber) -> None:
        """``key`` names the client connection (one subscription per connection and URI)."""
        first = uri not in self._subscribers
        self._subscribers.setdefault(uri, {})[id(key)] = subscriber
        res = parse_uri(uri)
        if res is None:
            return
        if first:
            self._seen[uri] = await self._fingerprint(res)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="troupe-mcp-subscriptions")

    def unsubscribe(self, uri: str, key: object) -> bool:
        """False when that connection was not subscribed to ``uri``."""
        subs = self._subscribers.get(uri)
        if not subs or subs.pop(id(key), None) is None:
            return False
        if not subs:
            del self._subscribers[uri]
            self._seen.pop(uri, None)
        return True

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        self._subscribers.clear()

    async def _fingerprint(self, res: SessionResource) -> str | None:
        """The resource's content now; ``None`` once it cannot be read (the session is gone)."""
        try:
            return await self._read(res)
        except Exception:
            return None

    async def check(self) -> list[str]:
        """One round: notify the subscribers of every changed session resource; returns those URIs."""
        changed: list[str] = []
        for uri in [u for u in self._subscribers if parse_uri(u) is not None]:
            res = parse_uri(uri)
            assert res is not None
            now = await self._fingerprint(res)
            if uri not in self._subscribers or now == self._seen.get(uri):
                continue
            gone = now is None
            self._seen[uri] = now
            changed.append(uri)
            for key, sub in list(self._subscribers.get(uri, {}).items()):
                try:
                    await sub.send_resource_updated(uri)
                except Exception:
                    log.debug("dropping a subscriber of %s: its connection is gone", uri, exc_info=True)
                    self._subscribers.get(uri, {}).pop(key, None)
            if gone or not self._subscribers.get(uri):  # nothing more will change
                self._subscribers.pop(uri, None)
                self._seen.pop(uri, None)
        return changed

    async def _watch(self) -> None:
        while any(parse_uri(u) is not None for u in self._subscribers):
            await asyncio.sleep(self.poll_s)
            try:
                await self.check()
            except Exception:
                log.warning("resource subscriptions: a round failed", exc_info=True)


__all__ = ["POLL_S", "Subscriber", "Subscriptions"]
