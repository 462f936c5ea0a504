"""The scheduler core: caps, per-attempt timeouts, retries for idempotent tools, idempotency keys."""

from __future__ import annotations

import asyncio

import pytest

from troupe.runtime.agent.scheduler import SchedulerCore, ToolJob, idempotency_key
from troupe.runtime.clock import FakeClock
from troupe.runtime.errors import ToolArgumentError, ToolTimeoutError
from troupe.tools.spec import Execution


def job(key: str = "k", *, tool: str = "t", timeout_s: float = 1.0, retries: int = 0, cap: int | None = None) -> ToolJob:
    return ToolJob(tool=tool, execution=Execution.IO, idempotency_key=key, timeout_s=timeout_s, retries=retries,
                   max_concurrency=cap, retry_backoff_s=0.01)


async def test_global_and_per_tool_caps_hold():
    core = SchedulerCore(max_concurrency=3)

    async def work() -> str:
        await asyncio.sleep(0.02)
        return "ok"

    capped = [core.run(job(f"a{i}", tool="a", cap=1), work) for i in range(4)]
    free = [core.run(job(f"b{i}", tool="b"), work) for i in range(6)]
    assert await asyncio.gather(*capped, *free) == ["ok"] * 10
    info = core.describe()
    assert info["tools"]["a"]["peak"] == 1
    assert info["peak"] == 3  # the global cap
    assert info["calls"] == 10 and info["running"] == 0


async def test_timeout_is_per_attempt_and_model_visible():
    core = SchedulerCore()

    async def hang() -> None:
        await asyncio.sleep(10)

    with pytest.raises(ToolTimeoutError, match="timed out after 0.05s"):
        await core.run(job(timeout_s=0.05), hang)
    assert core.stats["timeouts"] == 1
    assert core.describe()["running"] == 0  # the slot was released


async def test_idempotent_tools_retry_with_backoff():
    clock = FakeClock()
    core = SchedulerCore(clock=clock)
    attempts = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("blip")
        return "ok"

    assert await core.run(job(retries=3), flaky) == "ok"
    assert len(attempts) == 3
    assert clock.slept == [0.01, 0.02]  # doubling backoff
    assert core.stats["retries"] == 2


async def test_no_retry_without_retries_or_for_bad_arguments():
    core = SchedulerCore()
    calls = []

    async def boom() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await core.run(job("x", retries=0), boom)
    assert len(calls) == 1

    async def bad() -> None:
        calls.append(1)
        raise ToolArgumentError("bad argument")

    with pytest.raises(ToolArgumentError):
        await core.run(job("y", retries=3), bad)
    assert len(calls) == 2  # an argument error is not retried


async def test_same_key_runs_once():
    core = SchedulerCore()
    runs = []

    async def effect() -> int:
        runs.append(1)
        await asyncio.sleep(0.02)
        return len(runs)

    first, second = await asyncio.gather(core.run(job("same"), effect), core.run(job("same"), effect))
    third = await core.run(job("same"), effect)
    assert (first, second, third) == (1, 1, 1)
    assert len(runs) == 1
    assert core.stats["deduplicated"] == 2
    assert await core.run(job("other"), effect) == 2


async def test_failed_key_can_run_again():
    core = SchedulerCore()
    outcomes = iter([ConnectionError("once"), "ok"])

    async def attempt() -> str:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    with pytest.raises(ConnectionError):
        await core.run(job("k"), attempt)
    assert await core.run(job("k"), attempt) == "ok"


async def test_cancel_releases_the_slot_and_stops_the_work():
    core = SchedulerCore(max_concurrency=1)
    stopped = asyncio.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()

    task = asyncio.create_task(core.run(job("c", timeout_s=30), long))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set()
    assert core.stats["cancelled"] == 1
    assert await core.run(job("d"), lambda: asyncio.sleep(0, "free")) == "free"


def test_idempotency_key_is_stable_and_distinct():
    assert idempotency_key("s", "a", "1.1", 0, "c1") == idempotency_key("s", "a", "1.1", 0, "c1")
    assert idempotency_key("s", "a", "1.1", 0, "c1") != idempotency_key("s", "a", "1.2", 0, "c1")
