"""Memory on Ray: the memory service is an actor of its own (dedicated) or shares the pool host (packed); a
project's memory written in one session is recalled in another, in both placements."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

SUITE = Path(__file__).resolve().parents[2] / "evals/suites/memory"


ASKS = {"remember": ("remember deploy = Deploys go out on Tuesday", "ok"),
        "recall": ("recall deploys", "Deploys go out on Tuesday"),
        "context": ("context which day do deploys go out", "Deploys go out on Tuesday")}


@pytest.mark.parametrize(("placement", "steps", "recalled"), [
    ("dedicated", ["remember", "context"], 1),  # an actor per logical actor: kept short (each session starts several)
    ("packed", ["remember", "recall", "context"], 3),
])
async def test_project_memory_across_sessions_on_ray(troupe_ray: Troupe, lake: Path, placement: str, steps: list[str],
                                                     recalled: int) -> None:
    cfg = team([{"id": "a", "memory": "project"}], function="memory_model:respond", project=f"p-{placement}")
    cfg.models["m"].python_path = [str(SUITE)]  # the model function, imported in the host actors
    replies = []
    for text in (ASKS[s][0] for s in steps):
        session = await troupe_ray.open(cfg, placement=placement)
        result = await session.run(text, timeout=60)
        await session.close()
        assert result.status is SessionStatus.COMPLETED, result.error
        replies.append(result.reply)
    assert replies == [ASKS[s][1] for s in steps]
    counts = query(lake, "select type, count(*) n from events where type like 'memory.%' group by type").to_pylist()
    assert {r["type"]: r["n"] for r in counts} == {"memory.written": 1, "memory.recalled": recalled}
