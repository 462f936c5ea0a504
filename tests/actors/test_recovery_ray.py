"""Actors killed for real, mid-session: each kind of actor of a checkpointed (dedicated) three-agent
session is killed at a random point of it, with ``ray.kill`` and with SIGKILL of its worker process.
Every session must end with the undisturbed answer, every message sent must reach its recipient,
and no tool side effect may happen twice. ``benchmarks/chaos.py`` runs many more of these."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.actor import ActorHandle

from benchmarks.support.recovery_team import expected_reply, gaps, ledger_items, recovery_team, request_text
from troupe.actors.naming import NAMESPACE, dedicated_name
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.handle import Session
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = pytest.mark.ray

STEP_S = 0.08
"""The model's wait per call: a session of about a second, long enough to kill something mid-way."""
SEED = int(os.environ.get("TROUPE_CHAOS_SEED", "20261121"))
LOGICAL = ("lead", "worker_a", "worker_b", "blackboard", "tasks", "session")
"""Dedicated logical actors: each is its own host actor, named ``<session>/<name>``."""
RUNTIME = ("eventlog", "scheduler")
"""The runtime's own actors, shared by every session of the runtime."""


def victim_handle(troupe: Troupe, session: Session, victim: str) -> ActorHandle:
    backend: Any = troupe.backend
    if victim == "eventlog":
        return backend.log
    if victim == "scheduler":
        return backend.scheduler
    return ray.get_actor(dedicated_name(session.id, victim), namespace=NAMESPACE)


async def kill(handle: ActorHandle, how: str) -> None:
    if how == "ray.kill":
        ray.kill(handle, no_restart=False)
    else:
        pid = await handle.__ray_call__.remote(lambda self: os.getpid())
        os.kill(pid, signal.SIGKILL)


async def run_with_a_kill(troupe: Troupe, tmp_path: Path, victim: str, how: str, after_events: int,
                          tag: str) -> tuple[Session, Any, Path, bool]:
    """Run the session, kill ``victim`` once ``after_events`` of its events were seen; returns the
    session, its result, its ledger and whether the kill happened before the session ended."""
    ledger = tmp_path / f"ledger-{tag}"
    session = await troupe.open(recovery_team())
    await session.send(request_text(ledger, tag, STEP_S))
    seen, killed = 0, False
    async for event in session.events():
        seen += 1
        if seen == after_events and event.type != "session.finished":
            await kill(victim_handle(troupe, session, victim), how)
            killed = True
            break
    result = await session.result(timeout=90)
    await session.close()
    return session, result, ledger, killed


@pytest.mark.timeout(480)  # nine sessions, each with a kill and a restore: 105 s at CI load, 176 s with one more busy core
@pytest.mark.parametrize("how", ["ray.kill", "SIGKILL"])
async def test_killing_any_actor_mid_session_changes_nothing(troupe_ray: Troupe, tmp_path: Path, how: str) -> None:
    rng = random.Random(f"{SEED}-{how}")
    undisturbed = await troupe_ray.run(recovery_team(), request_text(tmp_path / "ledger-u", "u", STEP_S), timeout=60)
    assert undisturbed.ok and undisturbed.reply == expected_reply("u")
    n_events = query(troupe_ray.lake, f"select count(*) as n from events where session_id = '{undisturbed.session_id}'"
                     ).column("n")[0].as_py()
    kills = 0
    for i, victim in enumerate((*LOGICAL, *RUNTIME)):
        after = rng.randint(2, int(n_events * 0.8))  # a random point of the session
        tag = f"{i}"
        session, result, ledger, killed = await run_with_a_kill(troupe_ray, tmp_path, victim, how, after, tag)
        kills += killed
        where = f"{victim} killed ({how}) after {after} events"
        assert result.status is SessionStatus.COMPLETED, f"{where}: {result.error}"
        assert result.reply == expected_reply(tag), where
        assert sorted(ledger_items(ledger)) == [f"{tag}-worker_a", f"{tag}-worker_b"], f"{where}: a side effect twice"
        await troupe_ray.backend.flush()
        assert gaps(troupe_ray.lake, session.id) == {"messages": 0, "tool_results": 0, "tasks": 0,
                                                    "session_finished": 0}, where
    assert kills >= len(LOGICAL)  # (a kill after the session's last event is no test)


async def test_a_dead_actor_is_restored_from_its_checkpoint_not_started_empty(troupe_ray: Troupe, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    session = await troupe_ray.open(recovery_team())
    await session.send(request_text(ledger, "r", STEP_S))
    assigned: set[str] = set()
    async for event in session.events():
        # Both workers have their task: the registry's checkpoint holds both (a notice goes out only then).
        if event.type == "message.delivered" and event.agent in ("worker_a", "worker_b"):
            assigned.add(event.agent)
            if len(assigned) == 2:
                break
    await kill(victim_handle(troupe_ray, session, "tasks"), "SIGKILL")
    assert len(await session.tasks()) == 2  # served by the restarted actor, from its checkpoint
    described = await session.describe("lead")
    result = await session.result(timeout=60)
    await session.close()
    assert result.reply == expected_reply("r"), result.error
    assert described["state"] in ("idle", "running")
    restored = query(troupe_ray.lake, f"""select agent, json_extract(payload, '$.seq')::INT as seq from events
                                         where session_id = '{session.id}' and type = 'actor.restored'""").to_pylist()
    assert [r["agent"] for r in restored] == ["tasks"] and restored[0]["seq"] >= 1


async def test_a_pool_host_that_dies_fails_its_samples_with_the_reason_and_comes_back(
        ray_session: None, tmp_path: Path) -> None:
    troupe = await Troupe.connect(lake=tmp_path / "lake", pool_size=1)
    try:
        runs = [asyncio.ensure_future(troupe.run_packed(recovery_team(), request_text(tmp_path / f"l{i}", f"p{i}")))
                for i in range(4)]
        while not any(ledger_items(tmp_path / f"l{i}") for i in range(4)):  # under way
            await asyncio.sleep(0.02)
        [pool_host] = troupe.backend._pool  # type: ignore[attr-defined]
        await kill(pool_host, "SIGKILL")
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
        assert all(isinstance(o, Exception) and "died" in str(o).lower() for o in outcomes), outcomes
        again = await troupe.run_packed(recovery_team(), request_text(tmp_path / "after", "q"), timeout=60)
        assert again.ok and again.reply == expected_reply("q")  # the same pool host, restarted
    finally:
        await troupe.shutdown()
