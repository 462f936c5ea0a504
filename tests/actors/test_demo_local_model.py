"""The demo team on the real embedded model (the 'local' extra), on the session-wide Ray; then the
same session replayed by a new runtime from the lake with zero model calls (issue #18: the replay never
builds a model client, so the llama.cpp server the recording used is not started again)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from troupe.actors.local_model_actor import get_node_server
from troupe.actors.naming import local_model_name
from troupe.runtime.api import Troupe
from troupe.runtime.demo import QUESTION, answer_is_correct, demo_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.local.weights import model_key
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.local_model, pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def model_actor_alive() -> bool:
    name = local_model_name(ray.get_runtime_context().get_node_id(), model_key("default"))
    return any(a["name"] == name for a in ray.util.list_named_actors(all_namespaces=True))


@pytest.mark.timeout(400)  # the local model on 2 busy cores: 113 s with one more busy core than CI
async def test_demo_on_the_local_model_streams_calls_tools_cleans_up_and_replays(lake: Path) -> None:
    troupe = await Troupe.connect(lake=lake, placement="packed")
    try:
        session = await troupe.open(demo_team(), stream_tokens=True)
        await session.send(QUESTION)
        events = [e async for e in session.events()]
        result = await session.result(timeout=600)
        server = await get_node_server("default").describe.remote()
        await session.close()
    finally:
        await troupe.shutdown()

    assert result.status is SessionStatus.COMPLETED, result.error
    tokens = [e for e in events if e.type == "llm.token"]
    assert len(tokens) > 10 and {e.model for e in tokens} == {"qwen2.5-coder-0.5b"}
    calls = query(lake, "select agent, tool, json_extract_string(payload, '$.id') id from events "
                        "where type = 'tool.call' order by ts").to_pylist()
    # The 0.5B model writes calls as text; the runtime parsed them into real tool calls.
    assert {c["tool"] for c in calls} >= {"assign_tasks"} and all(c["id"].startswith("call_text_") for c in calls)
    # Reported, not asserted: a 0.5B model is right most of the time, not always (see docs/models.md).
    print(f"local model answer (correct={answer_is_correct(result.reply)}): {result.reply!r}")
    pid = server["pid"]
    assert pid and not os.path.exists(f"/proc/{pid}"), "the llama.cpp server must be gone after shutdown"

    # Recorded once (above), replayed by a fresh runtime: no model call, the same path and reply.
    assert not model_actor_alive()
    again = await Troupe.connect(lake=lake, placement="packed")
    try:
        report = await again.replay(result.session_id)
        assert not model_actor_alive()  # nothing asked for a model
    finally:
        await again.shutdown()
    assert report.identical, report.summary()
    assert report.reply == result.reply
