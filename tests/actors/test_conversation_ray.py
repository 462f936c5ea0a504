"""Conversations and simulated users on a real local Ray, in both placements."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_two_turn_conversation_in_both_placements(troupe_ray: Troupe, lake: Path, placement: str) -> None:
    cfg = team([{"id": "a"}], scripts={"a": [{"text": "hello"}, {"text": "bye"}]})
    session = await troupe_ray.open(cfg, placement=placement, conversation=True)
    await session.send("hi")
    first = await session.result(timeout=60)
    assert (first.status, first.reply) == (SessionStatus.RUNNING, "hello")
    await session.send("and now?")
    second = await session.result(timeout=60)
    assert (second.status, second.reply) == (SessionStatus.RUNNING, "bye")
    done = await session.end()
    assert (done.status, [(t.input, t.reply) for t in done.turns]) == (
        SessionStatus.COMPLETED, [("hi", "hello"), ("and now?", "bye")])
    await session.close()
    await troupe_ray.backend.flush()
    turns = query(troupe_ray.lake, f"select json_extract(payload, '$.turn')::int t from events "
                                   f"where type='turn.finished' and session_id='{session.id}' order by t")
    assert turns.column("t").to_pylist() == [1, 2]
    by_turn = query(troupe_ray.lake, f"select turn, count(*) n, count(distinct agent) agents from events "
                                     f"where session_id='{session.id}' group by turn order by turn").to_pylist()
    assert [(r["turn"], r["agents"]) for r in by_turn] == [(1, 2), (2, 2)]  # a's and the session's, none without a turn


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_simulated_user_conversation_in_both_placements(troupe_ray: Troupe, placement: str) -> None:
    cfg = team([{"id": "a"}], scripts={"a": [{"text": "r1"}, {"text": "r2"}, {"text": "r3"}],
                                       "user_sim": [{"text": "m2"}, {"text": "m3"}, {"text": "ok ###STOP###"}]},
               user={"persona": "a customer"})
    result = await troupe_ray.run(cfg, "m1", placement=placement, timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert [(t.input, t.reply) for t in result.turns] == [("m1", "r1"), ("m2", "r2"), ("m3", "r3")]


async def test_a_packed_sweep_sample_with_a_simulated_user_runs_several_turns(troupe_ray: Troupe) -> None:
    cfg = team([{"id": "a"}], scripts={"a": [{"text": "r1"}, {"text": "r2"}, {"text": "r3"}],
                                       "user_sim": [{"text": "m2"}, {"text": "m3"}]},
               user={"persona": "a customer", "max_turns": 3})
    results = [await troupe_ray.run_packed(cfg, "m1", timeout=60) for _ in range(2)]
    assert [(r.status, r.reply, len(r.turns)) for r in results] == [(SessionStatus.COMPLETED, "r3", 3)] * 2


@pytest.mark.parametrize("victim", ["a", "session"])
async def test_a_dedicated_conversation_goes_on_after_an_actor_dies_between_turns(troupe_ray: Troupe, victim: str) -> None:
    import ray

    from troupe.actors.naming import NAMESPACE, dedicated_name

    cfg = team([{"id": "a"}], function="tests.runtime.test_conversation_local:echo")
    session = await troupe_ray.open(cfg, placement="dedicated", conversation=True)
    await session.send("hi")
    assert (await session.result(timeout=60)).reply == "reply 1 to hi"
    ray.kill(ray.get_actor(dedicated_name(session.id, victim), namespace=NAMESPACE), no_restart=False)
    await session.send("and now?")  # reaches the restarted actor, restored from its checkpoint
    turn = await session.result(timeout=60)
    assert (turn.status, turn.reply, [t.turn for t in turn.turns]) == (SessionStatus.RUNNING, "reply 2 to and now?", [1, 2])
    done = await session.end()
    assert (done.status, len(done.turns)) == (SessionStatus.COMPLETED, 2)
    await session.close()


async def test_cancel_mid_conversation_on_ray(troupe_ray: Troupe) -> None:
    cfg = team([{"id": "a"}], scripts={"a": [{"text": "hello"}, {"text": "bye"}]})
    session = await troupe_ray.open(cfg, placement="dedicated", conversation=True)
    await session.send("hi")
    await session.result(timeout=60)
    await session.cancel("enough")
    final = await session.result(timeout=60)
    assert (final.status, final.error, len(final.turns)) == (SessionStatus.CANCELLED, "enough", 1)
    await session.close()
