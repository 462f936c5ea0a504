"""Cancelling a session (or one task), or a budget running out, reaches every agent, its in-flight
LLM stream and its tool calls, wherever they run, within a bounded time.

The team is busy in every way a session can be at once: ``talker`` is in the middle of a slow
streamed answer from an OpenAI-compatible server (a ``llm:talker`` task on the node's LLM worker),
``doer`` in the middle of four slow tool calls (two Ray tasks, one of them blocked in a C call
where no KeyboardInterrupt reaches it, a coroutine on the node's I/O tool worker, and a call on the
node's MCP actor to a stdio server). The evidence that work stopped is outside the runtime: the
HTTP server sees the stream's connection closed, each tool leaves ``<tag>.cancelled`` (the blocked
one's process is gone instead), and none ever leaves ``<tag>.done`` (benchmarks/support/cancel_tools.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.support.cancel_tools import MCP_SERVER, mcp_config
from benchmarks.support.openai_server import OpenAICompatServer, TextReply
from tests.runtime.teams import call
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig, parse_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event
from troupe.runtime.ids import SUPERVISOR, TASKS, RunId
from troupe.runtime.session.handle import Session
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BOUND_S = 5.0
"""How long cancellation may take to reach everything (the issue's bound)."""
TOOL_S = 8.0
"""How long each slow tool would run if nobody stopped it."""
FIX = "benchmarks.support.cancel_tools"
TOOL_TAGS = {"task": f"{FIX}:slow_task", "blocked": f"{FIX}:blocked_task", "io": f"{FIX}:slow_io",
             "mcp": f"{MCP_SERVER}__slow_mark"}
"""Marker tag -> the tool that leaves it (two Ray tasks, the I/O worker, the MCP actor)."""
KILLED = {"blocked"}
"""Tools that cannot notice a cancellation: stopped means their process is gone."""


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def slow_stream() -> TextReply:
    """An answer that trickles out for a minute, one character every 0.2 s."""
    return TextReply("x" * 300, chunk_size=1, chunk_delay_s=0.2)


def busy_team(base_url: str, folder: Path, *, budgets: dict[str, Any] | None = None,
              tool_s: float = TOOL_S) -> TeamConfig:
    calls = [call(tool.split(":")[-1], seconds=tool_s, folder=str(folder), tag=tag) for tag, tool in TOOL_TAGS.items()]
    return parse_team({
        "name": "busy", "entry": "talker", "default_model": "net", "budgets": budgets or {},
        "models": {"net": {"provider": "openai", "model": "test-model", "base_url": base_url, "max_retries": 0,
                           "timeout_s": 120},
                   "script": {"provider": "scripted", "scripts": {"doer": [{"tool_calls": calls}, {"text": "done"}]}}},
        "mcpServers": {MCP_SERVER: mcp_config()},
        "agents": [{"id": "talker"}, {"id": "doer", "model": "script", "tools": list(TOOL_TAGS.values()),
                                      "permissions": {"level": "L2"}}],
    })


@dataclass
class Watched:
    """A session's live events, each with the monotonic time it arrived here."""

    session: Session
    events: list[tuple[float, Event]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Watched:
        async def collect() -> None:
            async for event in self.session.events():
                self.events.append((time.monotonic(), event))

        self.task = asyncio.get_running_loop().create_task(collect())
        return self

    def first(self, type_: str) -> tuple[float, Event] | None:
        return next(((t, e) for t, e in self.events if e.type == type_), None)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool] | bool], within_s: float, what: str) -> float:
    """Poll ``check`` until it holds; returns when it first held (monotonic). Fails after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return time.monotonic()
        assert time.monotonic() < deadline, f"not within {within_s:g}s: {what}"
        await asyncio.sleep(0.02)


async def busy(troupe: Troupe, server: OpenAICompatServer, folder: Path, placement: str,
               **team: Any) -> Watched:
    """Open the busy team and wait until the stream and every tool call are in flight."""
    server.enqueue(slow_stream())
    session = await troupe.open(busy_team(server.base_url, folder, **team), placement=placement, stream_tokens=True)
    watched = Watched(session).start()
    await session.send("talk slowly")
    await session.send("work slowly", to="doer")

    def began(check: Callable[[], bool]) -> Callable[[], bool]:
        def began_or_ended() -> bool:
            ended = watched.first("session.finished")
            assert ended is None, f"the session ended before its work began: {ended[1].data if ended else None}"
            return check()
        return began_or_ended

    await until(began(lambda: any(e.type == "llm.token" and e.agent == "talker" for _, e in watched.events)), 60,
                "the talker's stream started")
    await until(began(lambda: all((folder / f"{tag}.start").exists() for tag in TOOL_TAGS)), 60,
                "every tool call started")
    return watched


async def everything_stopped(troupe: Troupe, watched: Watched, server: OpenAICompatServer, folder: Path,
                             since: float, status: SessionStatus) -> None:
    """Wait, at most until :data:`BOUND_S` after ``since``, until the session ended with ``status``,
    both agents are terminated, the stream's connection is closed and every tool call was stopped."""
    session = watched.session
    left = lambda: BOUND_S - (time.monotonic() - since)  # noqa: E731
    await until(lambda: watched.first("session.finished") is not None, left(), "session.finished arrived")
    [(_, finished)] = [(t, e) for t, e in watched.events if e.type == "session.finished"]
    assert finished.status == status.value, finished
    for agent in ("talker", "doer"):
        async def terminated(agent: str = agent) -> bool:
            return (await session.describe(agent))["state"] == "terminated"

        await until(terminated, left(), f"{agent} is terminated")
    [stream] = server.chat_requests
    await until(lambda: stream.client_closed_at is not None, left(), "the server saw the stream's connection closed")
    worker = await troupe.backend.scheduler.llm_worker.remote()
    await until(lambda: _idle(worker), left(), "the LLM worker has no call in flight")
    for tag in TOOL_TAGS:
        if tag in KILLED:
            pid = int((folder / f"{tag}.start").read_text())
            await until(lambda pid=pid: _gone(pid), left(), f"the {tag} tool's process was killed")
        else:
            await until(lambda tag=tag: (folder / f"{tag}.cancelled").exists(), left(),
                        f"the {tag} tool call was cancelled where it ran")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _idle(worker: Any) -> bool:
    return (await worker.describe.remote())["in_flight"] == 0


def terminated_in_lake(troupe: Troupe, session: Session) -> set[str]:
    """Agents whose ``agent.state`` events say they were terminated (they may follow
    ``session.finished``, so they are read from the lake, where a closed session's events all are)."""
    sql = (f"select agent from events where session_id = '{session.id}' and type = 'agent.state' "
           "and status = 'terminated'")
    return {row["agent"] for row in query(troupe.lake, sql).to_pylist()}


async def never_done(folder: Path, started: float, tool_s: float = TOOL_S) -> None:
    """No tool finished its sleep: wait until each would have, then look."""
    await asyncio.sleep(max(0.0, started + tool_s + 1.0 - time.monotonic()))
    assert not [tag for tag in TOOL_TAGS if (folder / f"{tag}.done").exists()], "a cancelled tool ran to its end"


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_cancelling_a_session_stops_every_agent_stream_and_tool(
        troupe_ray: Troupe, server: OpenAICompatServer, tmp_path: Path, placement: str) -> None:
    started = time.monotonic()
    watched = await busy(troupe_ray, server, tmp_path, placement)
    cancelled_at = time.monotonic()
    await watched.session.cancel("the client changed its mind")
    await everything_stopped(troupe_ray, watched, server, tmp_path, cancelled_at, SessionStatus.CANCELLED)
    result = await watched.session.result(timeout=1)
    assert result.status is SessionStatus.CANCELLED and result.error == "the client changed its mind"
    await watched.stop()
    await watched.session.close()
    assert terminated_in_lake(troupe_ray, watched.session) == {"talker", "doer"}
    await never_done(tmp_path, started)


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_a_wall_clock_budget_stops_in_flight_work_the_same_way(
        troupe_ray: Troupe, server: OpenAICompatServer, tmp_path: Path, placement: str) -> None:
    # The budget counts from the session's start, so it has to cover opening the team (actors, the
    # MCP server) under CI load; the tools sleep well past it, so it still runs out mid-call.
    budget_s = 12.0
    tool_s = budget_s + BOUND_S + 4.0
    started = time.monotonic()
    watched = await busy(troupe_ray, server, tmp_path, placement, budgets={"max_wall_s": budget_s}, tool_s=tool_s)
    sent = watched.first("session.started")
    assert sent is not None and watched.first("session.finished") is None, "the budget ran out before the work began"
    exceeded = await until(lambda: watched.first("budget.exceeded") is not None, budget_s + BOUND_S,
                           "budget.exceeded arrived")
    await everything_stopped(troupe_ray, watched, server, tmp_path, exceeded, SessionStatus.BUDGET_EXCEEDED)
    [(_, event)] = [(t, e) for t, e in watched.events if e.type == "budget.exceeded"]
    assert event.data["budget"] == "max_wall_s"
    await watched.stop()
    await watched.session.close()
    assert terminated_in_lake(troupe_ray, watched.session) == {"talker", "doer"}
    await never_done(tmp_path, started, tool_s)


def assignee_team(folder: Path) -> TeamConfig:
    """``doer`` works on whatever task it gets with one slow I/O call."""
    work = [call("slow_io", seconds=TOOL_S, folder=str(folder), tag="io")]
    return parse_team({
        "name": "assignee", "entry": "doer", "default_model": "script",
        "models": {"script": {"provider": "scripted", "scripts": {"doer": [{"tool_calls": work}, {"text": "worked"}]}}},
        "agents": [{"id": "doer", "tools": [f"{FIX}:slow_io"]}],
    })


async def test_cancelling_a_task_subtree_stops_its_assignees_work_on_it(troupe_ray: Troupe, tmp_path: Path) -> None:
    started = time.monotonic()
    session = await troupe_ray.open(assignee_team(tmp_path), placement="packed")
    tasks = lambda method, **kwargs: troupe_ray.backend.call(session.id, TASKS, method, kwargs)  # noqa: E731
    await tasks("create", goal="a project", created_by="user", task_id="project")
    await tasks("create", goal="work slowly", created_by="user", assignee="doer", parent_id="project",
                task_id="slow-work")
    await until(lambda: (tmp_path / "io.start").exists(), 60, "the assignee started working on the task")
    cancelled = await tasks("cancel", task_id="project", by="user")
    assert [t.id for t in cancelled] == ["project", "slow-work"]
    try:
        await until(lambda: (tmp_path / "io.cancelled").exists(), BOUND_S, "the assignee's tool call was cancelled")
        await never_done(tmp_path, started)
        assert (await session.describe("doer"))["state"] == "idle"  # the agent goes on; only its task's work stopped
        assert (await troupe_ray.backend.call(session.id, SUPERVISOR, "describe", {}))["status"] == "running"
    finally:
        await session.cancel()
        await session.close()


async def test_cancelling_a_packed_run_stops_its_work_and_says_so(troupe_ray: Troupe, tmp_path: Path) -> None:
    run_id = RunId.new()
    run = asyncio.get_running_loop().create_task(troupe_ray.run_packed(assignee_team(tmp_path), "go", run_id=run_id))
    await until(lambda: (tmp_path / "io.start").exists(), 60, "the sample started working")
    run.cancel()
    await until(lambda: (tmp_path / "io.cancelled").exists(), BOUND_S, "the sample's tool call was cancelled")
    with pytest.raises(asyncio.CancelledError):
        await run
    await troupe_ray.backend.flush()
    sql = (f"select type, status from events where run_id = '{run_id}' "
           "and type in ('session.started', 'session.finished') order by ts")
    assert [(r["type"], r["status"]) for r in query(troupe_ray.lake, sql).to_pylist()] == [
        ("session.started", "running"), ("session.finished", "cancelled")]
