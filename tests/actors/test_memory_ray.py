"""Memory on Ray: the memory service is an actor of its own (dedicated) or shares the pool host (packed). One
test, two sessions of a project (kept short: a dedicated session starts several actors): a dedicated one that
remembers a fact and recalls it into a later turn's context, then a packed one that recalls it in a later
session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

SUITE = Path(__file__).resolve().parents[2] / "evals/suites/memory"
FACT = "Deploys go out on Tuesday"


async def test_project_memory_across_turns_sessions_and_placements_on_ray(troupe_ray: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "memory": "project"}], function="memory_model:respond", project="p-ray")
    cfg.models["m"].python_path = [str(SUITE)]  # the model function, imported in the host actors
    first = await troupe_ray.open(cfg, placement="dedicated", conversation=True)
    replies = []
    try:
        for text in (f"remember deploy = {FACT}", "context which day do deploys go out"):
            await first.send(text)
            result = await first.result(timeout=60)
            assert result.status is not SessionStatus.FAILED, result.error
            replies.append(result.reply)
        await first.end()
    finally:
        await first.close()
    second = await troupe_ray.open(cfg, placement="packed")
    result = await second.run("recall deploys", timeout=60)
    await second.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert [*replies, result.reply] == ["ok", FACT, FACT]
    counts = query(lake, "select type, count(*) n from events where type like 'memory.%' group by type").to_pylist()
    assert {r["type"]: r["n"] for r in counts} == {"memory.written": 1, "memory.recalled": 3}
