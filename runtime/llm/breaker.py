"""A per-endpoint circuit breaker: stop sending requests to an endpoint that keeps failing.

After ``failures`` consecutive failed requests whose reason says the endpoint is down
(:data:`BREAKING`), the breaker *opens*: the model client skips the endpoint's profile while
another profile is available. After ``cooldown_s`` it is *half open*: one request probes it; a
success closes it, a failure opens it for another cool-down. An answer that shows the endpoint is
alive (a success, a 429, a 4xx) resets the count. The clock is injectable, so tests don't sleep.

One breaker per endpoint and process (:class:`BreakerBoard`, keyed like the rate limiter): every
agent of every session in the process learns from the failures of the others.
"""

from __future__ import annotations

import threading
from typing import Final, Literal

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import CircuitBreakerConfig
from troupe.runtime.llm.ratelimit import endpoint_key

BREAKING: Final = frozenset({"unreachable", "timeout", "server_error", "interrupted", "malformed_response"})
"""Failure reasons that count towards opening the breaker (the endpoint looks down, not busy)."""

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """One endpoint's breaker (see the module docstring)."""

    def __init__(self, config: CircuitBreakerConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.consecutive = 0
        """Failed requests in a row (reasons in :data:`BREAKING`)."""
        self.last_reason: str | None = None
        self._opened_at: float | None = None
        self._probe_at: float | None = None
        """When the half-open probe went out (``None``: none in flight)."""

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if self.retry_in() > 0 else "half_open"

    def retry_in(self) -> float:
        """Seconds until the endpoint may be probed (0 when it may be now, or the breaker is closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.config.cooldown_s - self.clock.monotonic())

    def allows(self) -> bool:
        """Whether a request may go to the endpoint now: closed, or half open with no probe out (a
        probe that never reported back for a whole cool-down counts as lost)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        return self._probe_at is None or self.clock.monotonic() - self._probe_at >= self.config.cooldown_s

    def begin(self) -> None:
        """A request goes out; when half open, it is the probe."""
        if self.state == "half_open":
            self._probe_at = self.clock.monotonic()

    def succeeded(self) -> None:
        self.consecutive = 0
        self._opened_at = self._probe_at = None

    def failed(self, reason: str) -> None:
        """A request failed with ``reason``; only :data:`BREAKING` reasons count."""
        if reason not in BREAKING:
            self.succeeded()  # the endpoint answered: it is up
            return
        self.consecutive += 1
        self.last_reason = reason
        if self._opened_at is not None or self.consecutive >= self.config.failures:
            self._opened_at = self.clock.monotonic()  # opened, or the probe failed: another cool-down
            self._probe_at = None

    def describe(self) -> str:
        return (f"circuit open after {self.consecutive} consecutive failures ({self.last_reason}); "
                f"next probe in {self.retry_in():.0f}s")


class BreakerBoard:
    """The breakers of a process, one per endpoint (the first profile to reach it sets its config)."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, config: CircuitBreakerConfig) -> CircuitBreaker:
        key = endpoint_key(base_url)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = self._breakers[key] = CircuitBreaker(config, clock=self.clock)
            return breaker


BREAKERS = BreakerBoard()
"""This process's breakers."""

__all__ = ["BREAKERS", "BREAKING", "BreakerBoard", "CircuitBreaker"]
