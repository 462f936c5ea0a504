"""The demo team on the real embedded model (the 'local' extra), on the session-wide Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from troupe.actors.local_model_actor import get_node_server
from troupe.runtime.api import Troupe
from troupe.runtime.demo import QUESTION, answer_is_correct, demo_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.local_model, pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


async def test_demo_on_the_local_model_streams_calls_tools_and_cleans_up(lake: Path) -> None:
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
