"""The per-endpoint rate limit: the limiter core on a fake clock, the limit holding across many real
sessions against one endpoint, and (on Ray) the shared limiter actor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from benchmarks.support.openai_server import ErrorReply, OpenAICompatServer, TextReply
from troupe.runtime.api import Troupe
from troupe.runtime.clock import FakeClock
from troupe.runtime.config import RateLimit, TeamConfig, parse_team
from troupe.runtime.llm.ratelimit import RateLimiter, endpoint_key, lease, local_limiter
from troupe.runtime.session.supervisor import SessionStatus


def limiter(clock: FakeClock, **limit: Any) -> RateLimiter:
    return RateLimiter(RateLimit(**limit), clock=clock)


# --- the core, on a fake clock ---------------------------------------------------------------
async def test_token_bucket_allows_a_burst_then_spaces_requests(clock: FakeClock) -> None:
    lim = limiter(clock, requests_per_s=2, burst=2)
    granted = []
    for _ in range(5):
        await lim.acquire()
        granted.append(clock.monotonic())
    assert granted == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert clock.slept == [0.5, 0.5, 0.5]
    clock.advance(10)  # a quiet spell refills the bucket, up to the burst only
    for _ in range(3):
        await lim.acquire()
    assert clock.slept == [0.5, 0.5, 0.5, 0.5]
    assert lim.stats.granted == 8 and lim.stats.waited == 4


async def test_burst_defaults_to_the_rate(clock: FakeClock) -> None:
    assert limiter(clock, requests_per_s=5).burst == 5
    assert limiter(clock, requests_per_s=0.5).burst == 1
    assert limiter(clock, max_concurrent=3).burst == 1


async def test_concurrency_cap_holds_and_waiters_are_served_in_order(clock: FakeClock) -> None:
    lim = limiter(clock, max_concurrent=2)
    order: list[int] = []
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def request(i: int) -> None:
        nonlocal running, peak
        async with lease(lim):
            order.append(i)
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1

    tasks = [asyncio.create_task(request(i)) for i in range(6)]
    await asyncio.sleep(0.05)
    assert order == [0, 1] and lim.in_flight == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert order == list(range(6)) and peak == 2 and lim.in_flight == 0
    assert lim.stats.peak_in_flight == 2 and lim.stats.waited == 4


async def test_a_waiter_that_gives_up_leaves_no_lease_behind(clock: FakeClock) -> None:
    lim = limiter(clock, max_concurrent=1)
    held = await lim.acquire()
    waiter = asyncio.create_task(lim.acquire("w"))
    await asyncio.sleep(0.02)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await lim.release("w")  # what ``lease`` does after a cancel: harmless
    await lim.release(held)
    assert lim.in_flight == 0
    assert await asyncio.wait_for(lim.acquire(), 1)


async def test_a_lease_never_released_is_reclaimed_after_its_ttl(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    lim = limiter(clock, max_concurrent=1, lease_ttl_s=30)
    await lim.acquire()  # its holder crashes: never released
    clock.advance(31)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(lim.acquire(), 1)
    assert lim.stats.expired == 1 and lim.in_flight == 1
    assert "reclaimed 1 lease" in caplog.text


async def test_hold_pauses_every_caller(clock: FakeClock) -> None:
    lim = limiter(clock, max_concurrent=4)
    await lim.hold(3.0)
    await lim.release(await lim.acquire())  # the first after the hold goes alone (see the next test)
    await lim.acquire()
    assert clock.slept == [3.0] and clock.monotonic() == 3.0


async def test_after_a_hold_one_caller_probes_before_the_rest_go(clock: FakeClock) -> None:
    """A 429 pause must not end in a stampede: the first caller after it goes alone, the others
    follow once its answer is back (and on a rate, at that rate, not in a burst)."""
    lim = limiter(clock, max_concurrent=4)
    await lim.hold(3.0)
    first = await lim.acquire()
    second = asyncio.ensure_future(lim.acquire())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done() and lim.in_flight == 1  # the probe is alone
    await lim.release(first)
    await asyncio.wait_for(second, 1)
    third = await lim.acquire()  # the probe came back: the endpoint's cap applies again
    assert lim.in_flight == 2 and third


async def test_after_a_hold_a_rate_limit_resumes_at_its_rate_not_a_burst(clock: FakeClock) -> None:
    lim = limiter(clock, requests_per_s=2, burst=4)
    await lim.hold(5.0)
    granted = []
    for _ in range(3):
        lease_id = await lim.acquire()
        granted.append(clock.monotonic())
        await lim.release(lease_id)
    assert granted == [5.0, 5.5, 6.0]


async def test_lease_without_a_limiter_is_free() -> None:
    async with lease(None):
        pass


async def test_one_limiter_per_endpoint_and_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    a = local_limiter("http://127.0.0.1:9/v1/", RateLimit(max_concurrent=2))
    b = local_limiter("HTTP://127.0.0.1:9/v1", RateLimit(max_concurrent=2))
    with caplog.at_level(logging.WARNING):
        c = local_limiter("http://127.0.0.1:9/v1", RateLimit(max_concurrent=5))
    assert a is b is c and a.limit.max_concurrent == 2
    assert "already has rate limit" in caplog.text
    assert local_limiter("http://127.0.0.1:10/v1", RateLimit(max_concurrent=2)) is not a
    assert endpoint_key("http://X/v1/") == "http://x/v1"


def test_rate_limit_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="requests_per_s"):
        RateLimit()
    with pytest.raises(ValidationError):
        RateLimit(requests_per_s=0)
    profile = parse_team({"name": "t", "entry": "a", "models": {"default": {
        "model": "m", "base_url": "http://127.0.0.1:1/v1", "rate_limit": {"max_concurrent": 4}}},
        "agents": [{"id": "a"}]}).models["default"]
    assert profile.rate_limit == RateLimit(max_concurrent=4)


# --- real sessions against one endpoint --------------------------------------------------------
@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def limited_team(base_url: str, **limit: Any) -> TeamConfig:
    return parse_team({
        "name": "limited", "entry": "a", "default_model": "main",
        "models": {"main": {"provider": "openai", "model": "test-model", "base_url": base_url, "max_retries": 3,
                            "backoff_s": 0.01, "rate_limit": limit}},
        "agents": [{"id": "a"}],
    })


async def test_concurrent_sessions_never_exceed_the_endpoints_concurrency_cap(
    troupe: Troupe, server: OpenAICompatServer
) -> None:
    server.default = TextReply("ok", delay_s=0.15)
    cfg = limited_team(server.base_url, max_concurrent=2)
    results = await asyncio.gather(*(troupe.run(cfg, f"q{i}", timeout=30) for i in range(8)))
    assert all(r.status is SessionStatus.COMPLETED for r in results), [r.error for r in results]
    assert len(server.chat_requests) == 8
    assert server.peak_active == 2  # reached, never passed
    # Without the limit the same sweep hits the server all at once.
    server.peak_active = 0
    unlimited = parse_team({**cfg.model_dump(by_alias=True), "models": {"main": {
        **cfg.models["main"].model_dump(), "rate_limit": None}}})
    await asyncio.gather(*(troupe.run(unlimited, f"q{i}", timeout=30) for i in range(8)))
    assert server.peak_active > 2


async def test_concurrent_sessions_never_exceed_the_endpoints_rate(troupe: Troupe, server: OpenAICompatServer) -> None:
    server.default = TextReply("ok")
    rate, burst, n = 10.0, 2, 8
    cfg = limited_team(server.base_url, requests_per_s=rate, burst=burst)
    results = await asyncio.gather(*(troupe.run(cfg, f"q{i}", timeout=30) for i in range(n)))
    assert all(r.status is SessionStatus.COMPLETED for r in results)
    times = sorted(r.received_at for r in server.chat_requests)
    assert len(times) == n
    # In any window of w seconds at most burst + rate * w requests start (with slack for the time
    # between the limiter's grant and the request's arrival on a busy machine).
    for i, start in enumerate(times):
        for j in range(i, n):
            window = times[j] - start
            assert j - i + 1 <= burst + rate * (window + 0.1) + 1e-9, (i, j, window)
    assert times[-1] - times[0] >= (n - burst) / rate - 0.1


async def test_a_429_with_retry_after_holds_back_every_session(troupe: Troupe, server: OpenAICompatServer) -> None:
    server.enqueue(ErrorReply(429, "slow down", retry_after=0.5))
    server.default = TextReply("ok", delay_s=0.05)
    cfg = limited_team(server.base_url, max_concurrent=1)
    results = await asyncio.gather(*(troupe.run(cfg, f"q{i}", timeout=30) for i in range(3)))
    assert all(r.status is SessionStatus.COMPLETED for r in results)
    first, *rest = sorted(r.received_at for r in server.chat_requests)
    assert len(rest) == 3 and all(t - first >= 0.45 for t in rest)  # nobody went in during the hold


# --- on Ray: one limiter actor per endpoint, shared by every process ----------------------------
class _Caller:
    """A process of its own that sends ``n`` requests at once through the endpoint's limiter."""

    async def run(self, base_url: str, n: int, hold_s: float) -> list[str]:
        from troupe.actors.llm_edge import install_ray_llm_edge
        from troupe.runtime.llm.ratelimit import limiter_for

        install_ray_llm_edge()  # as every Troupe actor that builds model clients does
        lim = limiter_for(base_url, RateLimit(max_concurrent=2))

        async def one() -> None:
            async with lease(lim):
                await asyncio.sleep(hold_s)

        await asyncio.gather(*(one() for _ in range(n)))
        return [type(lim).__name__]


@pytest.mark.ray
async def test_ray_limiter_actor_is_shared_across_processes(ray_session: None, server: OpenAICompatServer) -> None:
    import ray

    from troupe.actors.ratelimit_actor import get_rate_limiter, rate_limit_name

    callers = [ray.remote(num_cpus=0)(_Caller).remote() for _ in range(2)]
    try:
        kinds = await asyncio.gather(*(c.run.remote(server.base_url, 3, 0.3) for c in callers))
        assert kinds == [["RayLimiter"], ["RayLimiter"]]
        actor = get_rate_limiter(server.base_url)
        for _ in range(50):  # releases are fire-and-forget
            info = await actor.describe.remote()
            if info["in_flight"] == 0:
                break
            await asyncio.sleep(0.05)
        assert info["granted"] == 6 and info["peak_in_flight"] == 2 and info["in_flight"] == 0
        assert info["waited"] >= 4  # two processes, six requests, two slots
        assert rate_limit_name(server.base_url + "/") == rate_limit_name(server.base_url)
    finally:
        for c in callers:
            ray.kill(c)


@pytest.mark.ray
async def test_on_ray_sessions_share_the_endpoints_limiter_actor(troupe_ray: Troupe, server: OpenAICompatServer) -> None:
    from troupe.actors.ratelimit_actor import get_rate_limiter

    server.default = TextReply("ok", delay_s=0.2)
    cfg = limited_team(server.base_url, max_concurrent=1)
    results = await asyncio.gather(*(troupe_ray.run(cfg, f"q{i}", timeout=60, placement="packed") for i in range(4)))
    assert all(r.status is SessionStatus.COMPLETED for r in results), [r.error for r in results]
    assert len(server.chat_requests) == 4 and server.peak_active == 1
    info = await get_rate_limiter(server.base_url).describe.remote()  # the LLM worker went through the actor
    assert info["granted"] == 4 and info["peak_in_flight"] == 1
