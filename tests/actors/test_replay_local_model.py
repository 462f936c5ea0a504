"""The demo on the real embedded model, recorded once, then replayed by a new runtime: zero model calls
(the replay never builds a model client, so the llama.cpp server the recording used is not even
started again) and the same path and reply."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from troupe.actors.naming import local_model_name
from troupe.runtime.api import Troupe
from troupe.runtime.demo import QUESTION, demo_team
from troupe.runtime.llm.local.weights import model_key

pytestmark = [pytest.mark.ray, pytest.mark.local_model, pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def model_actor_alive() -> bool:
    name = local_model_name(ray.get_runtime_context().get_node_id(), model_key("default"))
    return any(a["name"] == name for a in ray.util.list_named_actors(all_namespaces=True))


async def test_the_demo_recorded_on_the_local_model_replays_with_no_model_call(lake: Path) -> None:
    first = await Troupe.connect(lake=lake, placement="packed")
    try:
        recorded = await first.run(demo_team(), QUESTION, timeout=600)
    finally:
        await first.shutdown()  # the local model's server goes with it
    assert not model_actor_alive()
    again = await Troupe.connect(lake=lake, placement="packed")
    try:
        report = await again.replay(recorded.session_id)
        assert not model_actor_alive()  # nothing asked for a model
    finally:
        await again.shutdown()
    assert report.identical, report.summary()
    assert report.reply == recorded.reply
