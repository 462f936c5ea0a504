"""A per-endpoint request limit: a token bucket (requests per second) and a cap on requests in flight.

:class:`RateLimiter` is the plain-Python core (injectable :class:`~troupe.runtime.clock.Clock`, so tests
don't sleep). A request takes a *lease* - one token and one slot - and gives it back when its
response has been read; a lease whose holder vanished is reclaimed after ``lease_ttl_s``. Waiters
are served in arrival order. :meth:`RateLimiter.hold` pauses the endpoint for everyone (a 429 with
Retry-After means the server wants *all* callers to wait, not just the one it answered).

:func:`limiter_for` gives the limiter of an endpoint: one per process (per event loop), or, where
the Ray edge installed one (:mod:`troupe.runtime.llm.edge`), a client of the endpoint's named limiter
actor so the limit holds across every host of the cluster; if that fails, the in-process one is used.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import RateLimit
from troupe.runtime.ids import unique_hex
from troupe.runtime.llm.edge import current_edge

log = logging.getLogger(__name__)


class Limiter(Protocol):
    """What the model client needs from a limiter (in-process or on Ray)."""

    async def acquire(self, lease_id: str | None = None) -> str:
        """Wait for a token and a slot; returns the lease id to :meth:`release`."""
        ...

    async def release(self, lease_id: str) -> None: ...

    async def hold(self, seconds: float) -> None:
        """Start no request for ``seconds`` (the server asked callers to back off)."""
        ...


@asynccontextmanager
async def lease(limiter: Limiter | None) -> AsyncIterator[None]:
    """``async with lease(limiter):`` around one request; no limiter, no wait."""
    if limiter is None:
        yield
        return
    lease_id = unique_hex()
    try:
        await limiter.acquire(lease_id)
    except BaseException:
        await limiter.release(lease_id)  # cancelled while waiting: drop the claim
        raise
    try:
        yield
    finally:
        await limiter.release(lease_id)  # never suspends (a Ray release is fire-and-forget): safe when cancelled


@dataclass
class LimiterStats:
    granted: int = 0
    waited: int = 0
    """Leases that had to wait for a token, a slot or a hold."""
    expired: int = 0
    """Leases reclaimed after ``lease_ttl_s`` (their holder never released them)."""
    peak_in_flight: int = 0


class RateLimiter:
    """Token bucket + concurrency cap for one endpoint (see the module docstring)."""

    def __init__(self, limit: RateLimit, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limit = limit
        self.clock = clock
        rate = limit.requests_per_s
        self.burst = float(limit.burst or max(1, int(rate or 1)))
        self._tokens = self.burst
        self._refilled = clock.monotonic()
        self._held_until = 0.0
        self._leases: dict[str, float] = {}
        """Lease id -> expiry (monotonic)."""
        self._dropped: deque[str] = deque(maxlen=1024)
        """Ids released before they were granted (the caller gave up waiting)."""
        self._turn: asyncio.Lock | None = None
        self._freed: asyncio.Event | None = None
        self._after_hold = False
        """A hold was asked for: the next lease granted is the probe, and the bucket restarts at the rate."""
        self._probe: str | None = None
        """The first lease after a hold: nobody else starts until it is released (no stampede)."""
        self.stats = LimiterStats()

    @property
    def in_flight(self) -> int:
        return len(self._leases)

    async def acquire(self, lease_id: str | None = None) -> str:
        lease_id = lease_id or unique_hex()
        if self._turn is None:
            self._turn, self._freed = asyncio.Lock(), asyncio.Event()
        queued = self._turn.locked()
        async with self._turn:  # FIFO: one waiter at a time claims the next token and slot
            waited = await self._wait_probe()
            waited = await self._wait_slot() or waited
            waited = await self._wait_token() or waited or queued
            if lease_id in self._dropped:
                self._dropped.remove(lease_id)
                return lease_id
            if self._after_hold:
                self._after_hold, self._probe = False, lease_id
            self._leases[lease_id] = self.clock.monotonic() + self.limit.lease_ttl_s
            self.stats.granted += 1
            self.stats.waited += waited
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, len(self._leases))
        return lease_id

    async def release(self, lease_id: str) -> None:
        if lease_id == self._probe:
            self._probe = None
        if self._leases.pop(lease_id, None) is None:
            self._dropped.append(lease_id)
        elif self._freed is not None:
            self._freed.set()

    async def hold(self, seconds: float) -> None:
        """Start nothing for ``seconds``; after that, one request goes first and the others follow
        when it is back (at the sustained rate, not a burst), so the pause does not end in a stampede."""
        self._held_until = max(self._held_until, self.clock.monotonic() + max(0.0, seconds))
        self._after_hold = True

    def reap(self) -> int:
        """Reclaim expired leases; returns how many."""
        now = self.clock.monotonic()
        expired = [k for k, until in self._leases.items() if until <= now]
        for k in expired:
            del self._leases[k]
        if expired:
            self.stats.expired += len(expired)
            log.warning("rate limiter reclaimed %d lease(s) never released within %gs", len(expired),
                        self.limit.lease_ttl_s)
            if self._freed is not None:
                self._freed.set()
        return len(expired)

    async def _wait_probe(self) -> bool:
        """Wait while the first request after a hold is out (or until its lease expires)."""
        assert self._freed is not None
        waited = False
        while self._probe is not None and self._probe in self._leases:
            waited = True
            self._freed.clear()
            expiry = self._leases[self._probe] - self.clock.monotonic()
            try:
                await asyncio.wait_for(self._freed.wait(), timeout=max(0.01, expiry))
            except TimeoutError:
                pass
            self.reap()
        return waited

    async def _wait_slot(self) -> bool:
        cap = self.limit.max_concurrent
        if cap is None:
            return False
        assert self._freed is not None
        waited = False
        while True:
            self.reap()
            if len(self._leases) < cap:
                return waited
            waited = True
            self._freed.clear()
            next_expiry = min(self._leases.values()) - self.clock.monotonic()
            try:
                await asyncio.wait_for(self._freed.wait(), timeout=max(0.01, next_expiry))
            except TimeoutError:
                pass

    async def _wait_token(self) -> bool:
        waited = False
        while True:
            now = self.clock.monotonic()
            if now < self._held_until:
                waited = True
                await self.clock.sleep(self._held_until - now)
                continue
            rate = self.limit.requests_per_s
            if rate is None:
                return waited
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._after_hold:  # the hold is over: one request now, then the sustained rate
                self._tokens = min(self._tokens, 1.0)
            if self._tokens >= 1:
                self._tokens -= 1
                return waited
            waited = True
            await self.clock.sleep((1 - self._tokens) / rate)

    def describe(self) -> dict[str, Any]:
        return {"limit": self.limit.model_dump(), "in_flight": len(self._leases), **self.stats.__dict__}


# --- one limiter per endpoint ------------------------------------------------------------------
_local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RateLimiter]] = weakref.WeakKeyDictionary()


def endpoint_key(base_url: str) -> str:
    """Profiles whose URLs differ only in case or a trailing slash share an endpoint."""
    return base_url.strip().rstrip("/").lower()


def local_limiter(base_url: str, limit: RateLimit, *, clock: Clock = SYSTEM_CLOCK) -> RateLimiter:
    """This process's (this event loop's) limiter for the endpoint; the first caller's limit sets it."""
    per_loop = _local.setdefault(asyncio.get_running_loop(), {})
    key = endpoint_key(base_url)
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = per_loop[key] = RateLimiter(limit, clock=clock)
    elif limiter.limit != limit:
        log.warning("endpoint %s already has rate limit %s; ignoring %s from another profile", base_url,
                    limiter.limit.model_dump(exclude_defaults=True), limit.model_dump(exclude_defaults=True))
    return limiter


def limiter_for(base_url: str, limit: RateLimit, *, clock: Clock = SYSTEM_CLOCK) -> Limiter:
    """The endpoint's limiter: the cluster-wide one the Ray edge installed (:mod:`troupe.runtime.llm.edge`),
    else this process's."""
    shared = current_edge().shared_limiter
    if shared is not None:
        try:
            return shared(base_url, limit, lambda: local_limiter(base_url, limit, clock=clock))
        except Exception:  # noqa: BLE001 - a limit that holds per process beats no request at all
            log.warning("no shared rate limiter for %s; limiting per process", base_url, exc_info=True)
    return local_limiter(base_url, limit, clock=clock)


__all__ = ["Limiter", "LimiterStats", "RateLimiter", "endpoint_key", "lease", "limiter_for",
           "local_limiter"]
