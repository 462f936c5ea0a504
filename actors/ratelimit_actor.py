"""A model endpoint's rate limit shared by every host of the cluster: one small named async actor
per endpoint, ``troupe-ratelimit-<endpoint hash>``, holding a :class:`~troupe.runtime.llm.ratelimit.RateLimiter`.

A request costs one actor call to take a lease (it returns when the token and slot are granted)
and one fire-and-forget call to give it back; a 429's Retry-After is passed on with a
fire-and-forget :meth:`~RateLimitActor.hold`, so every host waits, not only the one that was told.
The actor is not detached: it lives as long as the worker that created it (a node's LLM worker), and
the next caller after it is gone starts a new one. A lease whose holder died is reclaimed after the
limit's ``lease_ttl_s``. If Ray cannot give a limiter at all, callers fall back to the per-process one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError

from troupe.actors.naming import NAMESPACE
from troupe.actors.options import actor_class, rate_limit_options
from troupe.runtime.config import RateLimit
from troupe.runtime.llm.ratelimit import Limiter, RateLimiter, endpoint_key

log = logging.getLogger(__name__)

RATE_LIMIT_PREFIX = "troupe-ratelimit-"


def rate_limit_name(base_url: str) -> str:
    """``troupe-ratelimit-<sha1 of the endpoint>[:12]``: one per endpoint, whichever job asks."""
    return RATE_LIMIT_PREFIX + hashlib.sha1(endpoint_key(base_url).encode()).hexdigest()[:12]


class RateLimitActor:
    """Thin shell over the limiter core (waiting acquires are coroutines on the actor's loop)."""

    def __init__(self, base_url: str, limit: dict[str, Any]) -> None:
        self.base_url = base_url
        self.core = RateLimiter(RateLimit.model_validate(limit))

    async def acquire(self, lease_id: str) -> str:
        return await self.core.acquire(lease_id)

    async def release(self, lease_id: str) -> None:
        await self.core.release(lease_id)

    async def hold(self, seconds: float) -> None:
        await self.core.hold(seconds)

    async def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url, **self.core.describe()}


class RayLimiter:
    """A process's client of one endpoint's limiter actor (a :class:`~troupe.runtime.llm.ratelimit.Limiter`)."""

    def __init__(self, base_url: str, limit: RateLimit, fallback: Callable[[], Limiter]) -> None:
        self.base_url = base_url
        self.limit = limit
        self.name = rate_limit_name(base_url)
        self._fallback = fallback
        self._handle: Any = None
        self._degraded: Limiter | None = None
        """Set once Ray could not serve a lease: this process limits on its own from then on."""

    def _actor(self) -> Any:
        if self._handle is None:
            self._handle = actor_class(RateLimitActor, rate_limit_options(self.name)).remote(
                self.base_url, self.limit.model_dump(mode="json"))
        return self._handle

    async def acquire(self, lease_id: str | None = None) -> str:
        assert lease_id is not None, "the Ray limiter needs the caller's lease id (to release it after a cancel)"
        if self._degraded is None:
            for _ in range(2):  # the actor may have died with its owner: a second try starts a new one
                try:
                    return await self._actor().acquire.remote(lease_id)
                except (RayActorError, ValueError):
                    self._handle = None
            log.warning("rate limiter actor %s unavailable; limiting %s per process", self.name, self.base_url)
            self._degraded = self._fallback()
        return await self._degraded.acquire(lease_id)

    async def release(self, lease_id: str) -> None:
        if self._degraded is not None:
            await self._degraded.release(lease_id)
        elif self._handle is not None:
            self._handle.release.remote(lease_id)  # fire and forget: the caller need not wait

    async def hold(self, seconds: float) -> None:
        if self._degraded is not None:
            await self._degraded.hold(seconds)
        else:
            self._actor().hold.remote(seconds)


_clients: dict[str, RayLimiter] = {}


def ray_limiter(base_url: str, limit: RateLimit, *, fallback: Callable[[], Limiter]) -> Limiter:
    """This process's client of the endpoint's shared limiter (one per endpoint)."""
    key = endpoint_key(base_url)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = RayLimiter(base_url, limit, fallback)
    return client


def get_rate_limiter(base_url: str) -> Any:
    """The endpoint's limiter actor, for inspection (``describe``); raises ``ValueError`` if none."""
    return ray.get_actor(rate_limit_name(base_url), namespace=NAMESPACE)


__all__ = ["RATE_LIMIT_PREFIX", "RateLimitActor", "RayLimiter", "get_rate_limiter", "rate_limit_name",
           "ray_limiter"]
