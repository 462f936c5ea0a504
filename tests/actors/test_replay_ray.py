"""Replay and fork on dedicated placement (one Ray actor per agent): zero model calls (the model fails
every request once a marker file exists, in whichever process it runs), the same path and reply."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.config import load_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

DOWN = Path(tempfile.gettempdir()) / f"troupe-replay-model-down-{os.getuid()}"


def down_when_marked(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Answers from the request; fails every request while the marker file exists."""
    if DOWN.exists():
        raise RuntimeError("the model endpoint is down (a replay must not ask it)")
    last = request.messages[-1]
    if last.role == "tool":
        return f"calculated: {last.content}"
    return LLMResponse(tool_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "6 * 7"}')])


@pytest.fixture
def marker() -> Iterator[None]:
    DOWN.unlink(missing_ok=True)
    yield
    DOWN.unlink(missing_ok=True)


async def test_replays_and_a_fork_on_dedicated_placement(lake: Path, marker: Any) -> None:
    troupe = await Troupe.connect(lake=lake, placement="dedicated")
    try:
        calc = team([{"id": "a", "tools": ["calculator"]}], function=f"{__name__}:down_when_marked")
        first = await troupe.run(calc, "what is 6 * 7?", timeout=60)
        example = await troupe.run(load_team(Path(__file__).resolve().parents[2] / "examples" / "research_team"),
                                   "compute", timeout=60)
        assert first.reply == "calculated: 42" and example.ok, example.error
        DOWN.touch()
        for source in (first, example):
            report = await troupe.replay(source.session_id)
            assert report.identical, report.summary()
            assert report.reply == source.reply
        call_id = query(lake, f"""select json_extract_string(payload, '$.id') as id from events
                                  where session_id = '{first.session_id}' and type = 'tool.result'""").to_pylist()[0]["id"]
        DOWN.unlink()
        forked = await troupe.fork(first.session_id, tool_results={call_id: "41"})
        assert forked.reply == "calculated: 41"
    finally:
        await troupe.shutdown()
    parents = query(lake, """select json_extract_string(payload, '$.forked_from') as parent from events
                             where type = 'session.started' and json_extract_string(payload, '$.forked_from') is not null""")
    assert parents.to_pylist() == [{"parent": first.session_id}]
