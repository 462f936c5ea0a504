"""Rate limits per key: a token bucket each, refilled continuously, on an injectable clock."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from troupe.runtime.access.models import RateLimit
from troupe.runtime.clock import SYSTEM_CLOCK, Clock


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``take(key, limit)`` spends one token of ``key``'s bucket; when none is left it answers how
    many seconds until one is (the ``Retry-After`` of a 429). Buckets live in this process (each
    replica of a server limits on its own: with N replicas a key gets up to N times the rate)."""

    def __init__(self, default: RateLimit | None = None, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 10_000) -> None:
        self.default = default or RateLimit()
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: RateLimit | None = None) -> float:
        """0 when the request may go ahead (a token was spent); else the seconds to wait."""
        limit = limit or self.default
        now = self.clock.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._buckets.clear()  # bounded memory; a cleared bucket starts full again
                bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
            bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * limit.per_second)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / limit.per_second


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(seconds)))


__all__ = ["RateLimiter", "retry_after_header"]
