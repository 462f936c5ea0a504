"""The per-endpoint circuit breaker (on a fake clock), failover that stops trying a dead primary on
every call (against the OpenAI-compatible test server), and retries budgeted by time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.support.openai_server import ErrorReply, OpenAICompatServer, TextReply, free_port
from troupe.runtime.clock import FakeClock
from troupe.runtime.config import CircuitBreakerConfig, ModelProfile
from troupe.runtime.errors import ProviderError
from troupe.runtime.llm import ChatMessage, LLMRequest, OpenAIChatClient
from troupe.runtime.llm.breaker import BreakerBoard, CircuitBreaker


def breaker(clock: FakeClock, failures: int = 3, cooldown_s: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(CircuitBreakerConfig(failures=failures, cooldown_s=cooldown_s), clock=clock)


# --- the breaker, on a fake clock --------------------------------------------------------------
def test_opens_after_consecutive_failures_then_half_opens_for_one_probe(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(2):
        b.failed("unreachable")
    assert b.state == "closed" and b.allows()
    b.failed("unreachable")
    assert b.state == "open" and not b.allows()
    assert b.retry_in() == pytest.approx(10.0)
    assert "3 consecutive failures (unreachable)" in b.describe() and "next probe in 10s" in b.describe()
    clock.advance(9.9)
    assert not b.allows()
    clock.advance(0.1)
    assert b.state == "half_open" and b.allows()
    b.begin()  # the probe goes out: nobody else meanwhile
    assert not b.allows()
    b.failed("unreachable")  # the probe failed: open for another cool-down
    assert b.state == "open" and not b.allows() and b.retry_in() == pytest.approx(10.0)
    clock.advance(10)
    assert b.allows()
    b.begin()
    b.succeeded()
    assert b.state == "closed" and b.allows()


def test_a_success_or_a_live_answer_resets_the_count(clock: FakeClock) -> None:
    b = breaker(clock)
    b.failed("timeout")
    b.failed("server_error")
    b.succeeded()
    b.failed("timeout")
    b.failed("timeout")
    assert b.state == "closed"
    b.failed("rate_limited")  # the endpoint answered: alive, only busy
    b.failed("timeout")
    b.failed("timeout")
    assert b.state == "closed"
    b.failed("bad_request")  # a request the endpoint understood: alive
    assert b.state == "closed"


def test_a_probe_that_never_reports_back_does_not_lock_the_endpoint_out(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, cooldown_s=5)
    b.failed("unreachable")
    clock.advance(5)
    b.begin()  # the probe's caller was cancelled: no result ever comes
    assert not b.allows()
    clock.advance(5)
    assert b.allows()


def test_board_keeps_one_breaker_per_endpoint(clock: FakeClock) -> None:
    board = BreakerBoard(clock=clock)
    cfg = CircuitBreakerConfig()
    assert board.get("http://X:1/v1/", cfg) is board.get("http://x:1/v1", cfg)
    assert board.get("http://x:2/v1", cfg) is not board.get("http://x:1/v1", cfg)


# --- failover with a dead primary ----------------------------------------------------------------
@pytest.fixture
def primary() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer(default=ErrorReply(503, "down")) as srv:
        yield srv


@pytest.fixture
def backup() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer(default=TextReply("from the backup")) as srv:
        yield srv


def request() -> LLMRequest:
    return LLMRequest(messages=[ChatMessage(role="user", content="hi")])


def client(primary_url: str, backup_url: str, board: BreakerBoard, clock: FakeClock, **main: Any) -> OpenAIChatClient:
    options: dict[str, Any] = {"max_retries": 0, "backoff_s": 0.0, **main}
    profile = ModelProfile(model="m", base_url=primary_url, circuit_breaker=CircuitBreakerConfig(failures=2, cooldown_s=30),
                           fallbacks=["backup"], **options)
    fallback = ModelProfile(model="b", base_url=backup_url, max_retries=0)
    return OpenAIChatClient(profile, profile_name="main", fallbacks=[("backup", fallback)], clock=clock, breakers=board)


async def test_a_breaker_that_trips_mid_request_fails_over_at_once(primary: OpenAICompatServer,
                                                                     backup: OpenAICompatServer, clock: FakeClock) -> None:
    llm = client(primary.base_url, backup.base_url, BreakerBoard(clock=clock), clock, max_retries=5)
    try:
        assert (await llm.complete(request())).profile == "backup"
        assert len(primary.chat_requests) == 2  # not 6: the breaker opened after two
    finally:
        await llm.aclose()


async def test_a_dead_primary_is_not_tried_on_every_call(primary: OpenAICompatServer, backup: OpenAICompatServer,
                                                         clock: FakeClock) -> None:
    board = BreakerBoard(clock=clock)
    llm = client(primary.base_url, backup.base_url, board, clock)
    try:
        for _ in range(10):
            response = await llm.complete(request())
            assert (response.profile, response.text) == ("backup", "from the backup")
        assert len(primary.chat_requests) == 2  # the two failures that opened the breaker, no more
        assert len(backup.chat_requests) == 10
        clock.advance(30)  # cool-down over: one probe; the primary is back
        primary.default = TextReply("primary again")
        assert (await llm.complete(request())).profile == "main"
        assert (await llm.complete(request())).profile == "main"
        assert len(primary.chat_requests) == 4
    finally:
        await llm.aclose()


async def test_a_skipped_profile_is_named_in_the_error(backup: OpenAICompatServer, clock: FakeClock) -> None:
    board = BreakerBoard(clock=clock)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backup.default = ErrorReply(401, "bad key")
    llm = client(dead, backup.base_url, board, clock)
    try:
        for _ in range(2):
            with pytest.raises(ProviderError):
                await llm.complete(request())
        with pytest.raises(ProviderError) as err:
            await llm.complete(request())
    finally:
        await llm.aclose()
    assert "'main': skipped: circuit open after 2 consecutive failures (unreachable)" in err.value.message
    assert err.value.fields["skipped"] == ["main"]
    assert ".." not in err.value.message


async def test_every_profile_open_still_tries_them(primary: OpenAICompatServer, clock: FakeClock) -> None:
    """A breaker routes around a dead endpoint; with nowhere else to go the request is still made."""
    board = BreakerBoard(clock=clock)
    profile = ModelProfile(model="m", base_url=primary.base_url, max_retries=3, backoff_s=0.0,
                           circuit_breaker=CircuitBreakerConfig(failures=2, cooldown_s=30))
    llm = OpenAIChatClient(profile, profile_name="main", clock=clock, breakers=board)
    try:
        with pytest.raises(ProviderError):
            await llm.complete(request())
        assert board.get(primary.base_url, CircuitBreakerConfig()).state == "open"
        assert len(primary.chat_requests) == 4  # a lone endpoint keeps its retries: nowhere to fail over to
        primary.default = TextReply("up")
        assert (await llm.complete(request())).text == "up"
        assert board.get(primary.base_url, CircuitBreakerConfig()).state == "closed"
    finally:
        await llm.aclose()


# --- retries budgeted by time ----------------------------------------------------------------------
async def test_retries_are_budgeted_by_time_when_a_deadline_is_set(primary: OpenAICompatServer, clock: FakeClock) -> None:
    primary.default = None
    for _ in range(6):
        primary.enqueue(ErrorReply(429, "slow down", retry_after=1))
    primary.enqueue(TextReply("finally"))
    profile = ModelProfile(model="m", base_url=primary.base_url, max_retries=2, retry_deadline_s=10)
    llm = OpenAIChatClient(profile, clock=clock, breakers=BreakerBoard(clock=clock))
    try:
        assert (await llm.complete(request())).text == "finally"  # seven attempts, not max_retries + 1
        assert clock.slept == [1.0] * 6
        for _ in range(20):
            primary.enqueue(ErrorReply(429, "slow down", retry_after=1))
        with pytest.raises(ProviderError, match="rate_limited"):
            await llm.complete(request())
        assert sum(clock.slept) <= 6 + 10  # gave up at the deadline
        assert len(primary.chat_requests) in (7 + 10, 7 + 11)
    finally:
        await llm.aclose()
