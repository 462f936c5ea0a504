"""Memory in whole sessions without Ray: across turns and sessions, from a second runtime on the same lake,
after a crash and a resume; the tools and the automatic recall, audited as events."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tests.runtime.teams import team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.memory.store import MemoryStore
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.storage.location import open_storage
from troupe.tools.spec import tool

SUITE = Path(__file__).resolve().parents[2] / "evals/suites/memory"
sys.path.insert(0, str(SUITE))


def memory_team(project: str = "alpha", memory: str = "project", extra_tools: list[str] | None = None) -> Any:
    return team([{"id": "a", "memory": memory, "tools": extra_tools or []}], function="memory_model:respond",
                project=project)


async def ask(troupe: Troupe, cfg: Any, text: str) -> str:
    result = await troupe.run(cfg, text, timeout=20)
    assert result.status is SessionStatus.COMPLETED, result.error
    return result.reply or ""


async def test_remember_then_recall_in_later_sessions_and_from_a_second_runtime(troupe: Troupe, lake: Path) -> None:
    cfg = memory_team()
    assert await ask(troupe, cfg, "remember user/colour = The user's favourite colour is teal") == "ok"
    assert await ask(troupe, cfg, "recall favourite colour") == "The user's favourite colour is teal"
    # recalled into the context at the start of a later session's turn, without a tool call
    assert await ask(troupe, cfg, "context what is my favourite colour") == "The user's favourite colour is teal"
    assert await ask(troupe, cfg, "update user/colour = The user's favourite colour is orange") == "ok"
    assert await ask(troupe, cfg, "recall favourite colour") == "The user's favourite colour is orange"
    # another project's sessions never see it
    assert await ask(troupe, memory_team("beta"), "recall favourite colour") == "nothing"
    # a second runtime (a cluster elsewhere) on the same lake reads the project's memory
    second = Troupe.local(lake=lake)
    try:
        assert await ask(second, cfg, "context favourite colour") == "The user's favourite colour is orange"
    finally:
        await second.shutdown()
    events = query(lake, "select type, agent, payload from events where type like 'memory.%' order by ts").to_pylist()
    assert [e["type"] for e in events].count("memory.written") == 2
    assert {e["agent"] for e in events} == {"a"}
    recalled = [e for e in events if e["type"] == "memory.recalled" and '"source":"turn"' in e["payload"]]
    assert len(recalled) >= 2  # each 'context' turn recorded the entries it put in the context


async def test_session_memory_stays_in_its_session(troupe: Troupe) -> None:
    cfg = memory_team(memory="session")
    session = await troupe.open(cfg, conversation=True)
    await session.send("remember draft = the draft is in section 3")
    assert (await session.result(timeout=20)).reply == "ok"
    await session.send("context where is the draft")  # a later turn of the same session
    assert (await session.result(timeout=20)).reply == "the draft is in section 3"
    await session.end()
    await session.close()
    assert await ask(troupe, cfg, "recall draft") == "nothing"


def remember_then_pause(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Remembers, then calls ``pause`` (where the test crashes the process), then answers (stateless: a
    resumed process answers the same)."""
    last = request.messages[-1]
    if last.role != "tool":
        return LLMResponse(tool_calls=[ToolCall(id="c1", name="remember", arguments='{"key": "plan", "value": "ship on Friday"}')])
    if last.tool_call_id == "c1":
        return LLMResponse(tool_calls=[ToolCall(id="c2", name="pause", arguments="{}")])
    return "done"


async def test_memory_survives_a_crash_and_a_resume_written_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    gate = asyncio.Event()

    @tool(name="pause")
    async def pause() -> str:
        gate.set()
        await asyncio.sleep(3600)
        return "never"

    from tests.runtime.test_recovery_local import crash

    cfg = team([{"id": "a", "memory": "project", "tools": ["pause"]}], project="alpha",
               function="tests.runtime.test_memory_session:remember_then_pause")
    first = Troupe.local(lake=lake, checkpoints=True)
    first.registry.register(pause)
    session = await first.open(cfg)
    await session.send("go")
    await asyncio.wait_for(gate.wait(), 20)
    crash(first)

    @tool(name="pause")
    async def pause_again() -> str:
        return "resumed"

    again = Troupe.local(lake=lake, checkpoints=True)
    again.registry.register(pause_again)
    try:
        resumed = await again.resume(session.id)
        result = await resumed.result(timeout=20)
        await resumed.close()
    finally:
        await again.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    store = MemoryStore(open_storage(lake / "memory"), "project", "alpha")
    store.refresh()
    assert [e.value for e in store.history("plan")] == ["ship on Friday"]  # written once, kept
    assert store.search("ship friday", 1)[0].entry.session_id == session.id
