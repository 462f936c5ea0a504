"""Whole sessions run by their pool host in batches (what sweeps use), on a real local Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import troupe.actors.backend as backend_module
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def team() -> TeamConfig:
    return TeamConfig.model_validate({
        "name": "packed", "entry": "solo", "default_model": "m",
        "models": {"m": {"provider": "function", "function": "tests.evals.sweep_model:reply"}},
        "agents": [{"id": "solo"}],
    })


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the backend sends to a host."""
    sizes: list[int] = []
    consume = backend_module.RayBackend._consume_runs

    async def counted(host: Any, items: list[Any], *rest: Any) -> None:
        sizes.append(len(items))
        await consume(host, items, *rest)

    monkeypatch.setattr(backend_module.RayBackend, "_consume_runs", staticmethod(counted))
    return sizes


async def test_runs_asked_together_go_in_one_call_per_host_and_each_gets_its_own_result(
        troupe_ray: Troupe, lake: Path, batches: list[int]) -> None:
    inputs = [f"q{i}" for i in range(12)] + ["slow q"]
    results = await asyncio.gather(*(troupe_ray.run_packed(team(), text, run_id="r-packed") for text in inputs))
    assert [r.reply for r in results] == [f"answer to {t}" for t in inputs]
    assert all(r.status is SessionStatus.COMPLETED for r in results)
    pool = troupe_ray.backend.pool_size
    assert len(batches) == pool and sum(batches) == len(inputs)
    await troupe_ray.backend.flush()
    sessions = query(lake, "select count(distinct session_id) n from events where type = 'session.finished'")
    assert sessions.to_pylist() == [{"n": len(inputs)}]


async def test_a_failing_session_fails_alone(troupe_ray: Troupe) -> None:
    ok, crashed = await asyncio.gather(troupe_ray.run_packed(team(), "fine"), troupe_ray.run_packed(team(), "crash"))
    assert ok.reply == "answer to fine"
    assert crashed.status is SessionStatus.FAILED and "crashed on purpose" in (crashed.error or "")


async def test_cancelling_one_waiting_run_cancels_its_session_and_no_other(troupe_ray: Troupe, lake: Path) -> None:
    slow = asyncio.ensure_future(troupe_ray.run_packed(team(), "slow one", run_id="r-cancel"))
    other = asyncio.ensure_future(troupe_ray.run_packed(team(), "slow two", run_id="r-cancel"))
    await asyncio.sleep(0.1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert (await other).reply == "answer to slow two"
    await asyncio.sleep(0.5)
    await troupe_ray.backend.flush()
    finished = query(lake, "select status from events where type = 'session.finished' order by status").to_pylist()
    # The cancelled session was stopped on its host: it never finished with an answer.
    assert [r["status"] for r in finished] in (["completed"], ["cancelled", "completed"])
