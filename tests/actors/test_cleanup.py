"""Sessions leave nothing behind: after many finished, failed and cancelled sessions on both
placements (some with an MCP stdio server, some cancelled in the middle of a streamed answer, two
Ray tasks, an I/O tool call and a shell command), no actor of theirs is alive, no process is left
over, and the long-lived processes' open files do not grow with the number of sessions.

What outlives sessions by design is bounded too: an MCP server nobody uses is closed after a while,
and a node's MCP actor keeps the sampling profiles of its latest sessions only."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray

from benchmarks.support.cancel_tools import MCP_SERVER, mcp_config
from benchmarks.support.openai_server import ErrorReply, OpenAICompatServer, TextReply
from tests.runtime.teams import call
from tests.support.mcp_servers import stdio_config
from troupe.runtime.agent.dispatch import SessionModels
from troupe.runtime.api import Troupe
from troupe.runtime.config import ModelProfile, TeamConfig, parse_team
from troupe.runtime.ids import SessionId
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.mcp import McpManager
from troupe.tools.mcp.models import CallerInfo

FIX = "benchmarks.support.cancel_tools"
SLEEP_MARK = "61.25"
"""The shell command of a cancelled session is ``sleep 61.25``: a process with that in its command
line after the batch is one the shell tool left behind."""
SESSIONS = 12
"""Every combination of kind (3), placement (2) and MCP use (2) once; open files are compared after 6 and 12."""
SETTLE_S = 20.0
"""How long killed actors' processes may take to exit (ray.kill is asynchronous)."""
FD_SLACK = 3
"""Descriptors a long-lived process may open or close between two looks for reasons of its own
(Ray's gRPC channels, a pooled HTTP connection): far below one per session."""


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def session_team(kind: str, base_url: str, folder: Path, tag: str, *, mcp: bool) -> TeamConfig:
    """``completed``: one agent runs quick tools (an I/O call, and an MCP call when ``mcp``) and replies.
    ``failed``: one agent on the HTTP model, which answers 500. ``cancelled``: the talker streams slowly
    while the doer runs slow tools and a shell command (the test cancels it)."""
    net = {"provider": "openai", "model": "test-model", "base_url": base_url, "max_retries": 0, "timeout_s": 60}
    servers = {MCP_SERVER: mcp_config()} if mcp else {}
    mcp_tools = [f"{MCP_SERVER}__slow_mark"] if mcp else []
    seconds = 0 if kind == "completed" else 30
    calls = [call("slow_io", seconds=seconds, folder=str(folder), tag=f"{tag}-io")]
    if mcp:
        calls.append(call(f"{MCP_SERVER}__slow_mark", seconds=seconds, folder=str(folder), tag=f"{tag}-mcp"))
    if kind == "cancelled":
        calls += [call("slow_task", seconds=seconds, folder=str(folder), tag=f"{tag}-task"),
                  call("blocked_task", seconds=seconds, folder=str(folder), tag=f"{tag}-blocked"),
                  call("shell", command=f"sleep {SLEEP_MARK}")]
    tools = [f"{FIX}:slow_io", f"{FIX}:slow_task", f"{FIX}:blocked_task", "shell", *mcp_tools]
    doer = {"id": "doer", "model": "script", "tools": tools,
            "permissions": {"level": "L3", "scopes": ["shell:exec"]}}
    agents: list[dict[str, Any]] = {
        "completed": [doer],
        "failed": [{"id": "talker"}],
        "cancelled": [{"id": "talker"}, doer],
    }[kind]
    return parse_team({
        "name": f"cleanup-{kind}", "entry": agents[0]["id"], "default_model": "net", "mcpServers": servers,
        "workspace": {"root": str(folder / "workspaces")},
        "models": {"net": net, "script": {"provider": "scripted", "scripts": {
            "doer": [{"tool_calls": calls}, {"text": "done"}]}}},
        "agents": agents,
    })


KINDS = {"completed": SessionStatus.COMPLETED, "failed": SessionStatus.FAILED, "cancelled": SessionStatus.CANCELLED}


def kind_of(i: int) -> str:
    return list(KINDS)[i % len(KINDS)]


async def run_one(troupe: Troupe, server: OpenAICompatServer, folder: Path, i: int) -> tuple[SessionId, SessionStatus]:
    """Session ``i`` of the batch (its kind, placement and MCP use cycle with ``i``): its id and how it ended."""
    kind = kind_of(i)
    placement = ("dedicated", "packed")[i % 2]
    tag, mcp = f"s{i}", i % 4 < 2
    cfg = session_team(kind, server.base_url, folder, tag, mcp=mcp)
    if kind == "failed":
        server.enqueue(ErrorReply(500, "the model fell over"))
    elif kind == "cancelled":
        server.enqueue(TextReply("x" * 300, chunk_size=1, chunk_delay_s=0.2))
    session = await troupe.open(cfg, placement=placement, subscribe=False)
    try:
        if kind != "cancelled":
            return session.id, (await session.run("go", timeout=60)).status
        await session.send("talk slowly")
        await session.send("work slowly", to="doer")
        starts = [folder / f"{tag}-{what}.start" for what in ("io", "task", "blocked", *(["mcp"] if mcp else []))]
        await _until(lambda: all(p.exists() for p in starts) and _stream_open(server), 60)
        await session.cancel()
        return session.id, (await session.result(timeout=30)).status
    finally:
        await session.close()


def _stream_open(server: OpenAICompatServer) -> bool:
    last = server.chat_requests[-1] if server.chat_requests else None
    return last is not None and last.finished_at is None


async def _until(check: Any, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"not within {within_s:g}s"
        await asyncio.sleep(0.05)


def process_kinds() -> Counter[str]:
    """Every process this test process started, directly or not (this Ray instance's GCS, raylet
    and workers, and whatever they started), counted by what it is: a Ray worker by its process
    title (``ray::HostActor``), anything else by its executable and first arguments."""
    kinds: Counter[str] = Counter()
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if not cmdline:
            continue
        title = cmdline[0]
        kinds[title.split(".")[0] if title.startswith("ray::") else " ".join(cmdline[:3])] += 1
    # Ray's pool of idle task workers grows and shrinks on Ray's own schedule (a cancelled
    # ``slow_task`` hands its worker back to it); not ours to count.
    kinds.pop("ray::IDLE", None)
    return kinds


def leftovers(baseline: Counter[str]) -> dict[str, int]:
    """Kinds of process more numerous now than in ``baseline``."""
    now = process_kinds()
    return {kind: n - baseline[kind] for kind, n in now.items() if n > baseline[kind]}


async def long_lived_pids(troupe: Troupe) -> dict[str, int]:
    """The runtime's processes that outlive sessions: the pool hosts and the per-node workers."""
    backend: Any = troupe.backend
    pids = {f"pool host {i}": (await h.describe.remote())["pid"] for i, h in enumerate(backend._pool)}
    scheduler = backend.scheduler
    pids["scheduler"] = (await scheduler.describe.remote())["pid"]
    pids["llm worker"] = (await (await scheduler.llm_worker.remote()).describe.remote())["pid"]
    mcp = await scheduler.mcp_describe.remote()
    pids.update({f"mcp actor {node[:8]}": info["pid"] for node, info in mcp.items()})
    return pids


def open_fds(pids: dict[str, int]) -> dict[str, int]:
    return {name: len(os.listdir(f"/proc/{pid}/fd")) for name, pid in pids.items()}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_many_sessions_leave_no_actors_processes_or_open_files(troupe_ray: Troupe, tmp_path: Path,
                                                                     server: OpenAICompatServer) -> None:
    # Warm up: the first sessions start what lives as long as the runtime, so it is in the baseline
    # and allowed after the batch: the pool hosts, the scheduler's per-node I/O, MCP and LLM
    # workers, the MCP server process the node's MCP actor keeps (one per server config), Ray's
    # task workers. A session must add nothing to that which outlives the session.
    for i in range(6):
        await run_one(troupe_ray, server, tmp_path / "warm", i)
    # Once the last warm-up tool task is gone (a cancelled one may take FORCE_AFTER_S to be killed).
    await _until(lambda: not any(kind.startswith("ray::tool:") for kind in process_kinds()), SETTLE_S)
    baseline = process_kinds()
    pids = await long_lived_pids(troupe_ray)
    assert any(n.startswith("pool host") for n in pids) and any(n.startswith("mcp") for n in pids)

    ran: list[tuple[SessionId, SessionStatus]] = []
    fds: list[dict[str, int]] = []
    for i in range(SESSIONS):
        ran.append(await run_one(troupe_ray, server, tmp_path, i))
        if i + 1 in (SESSIONS // 2, SESSIONS):
            fds.append(open_fds(pids))
    assert [status for _, status in ran] == [KINDS[kind_of(i)] for i in range(SESSIONS)]

    backend: Any = troupe_ray.backend
    prefixes = tuple(f"{sid}/" for sid, _ in ran)
    # ray.util.state.list_actors needs the dashboard, which the test Ray runs without; the named
    # actor list holds every actor that is not dead, and dedicated hosts are named <session>/<name>.
    alive = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefixes)]
    assert not alive, f"actors of closed sessions are alive: {alive}"
    for host in backend._pool:
        assert (await host.describe.remote())["sessions"] == {}, "a pool host still holds a closed session"
    deadline = time.monotonic() + SETTLE_S
    while (extra := leftovers(baseline)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not extra, f"processes left behind (kind: how many more than before the batch): {extra}"
    assert not [p for p in psutil.process_iter(["cmdline"]) if SLEEP_MARK in " ".join(p.info["cmdline"] or [])]
    assert await long_lived_pids(troupe_ray) == pids, "a long-lived runtime process was replaced"
    half, full = fds
    grown = {name: (half[name], full[name]) for name in pids if full[name] > half[name] + FD_SLACK}
    assert not grown, f"open files grew with the number of sessions (after {SESSIONS // 2}, after {SESSIONS}): {grown}"


def test_a_node_keeps_the_sampling_profiles_of_its_latest_sessions_only() -> None:
    """The MCP actor of a node outlives every session it serves; what it keeps per session is bounded."""
    models = {"m": ModelProfile(provider="scripted")}
    kept = SessionModels(cap=2)
    for sid in ("s-1", "s-2", "s-1", "s-3"):  # s-1 registered again: it is recent, s-2 is not
        kept.register(sid, models)
    assert len(kept) == 2
    assert kept.of(CallerInfo(session_id="s-1")) == models and kept.of(CallerInfo(session_id="s-3")) == models
    assert kept.of(CallerInfo(session_id="s-2")) == {}
    kept.forget("s-3")  # a closed session is forgotten
    assert len(kept) == 1 and kept.of(CallerInfo(session_id="s-3")) == {}


async def test_an_mcp_server_nobody_uses_is_closed_and_comes_back_on_next_use() -> None:
    """A stdio server under a config no live session uses any more does not stay for the runtime's life."""
    manager = McpManager(idle_close_s=0.4)
    cfg = stdio_config()
    try:
        assert (await manager.call("t", cfg, "echo", {"text": "hi"})).text == "hi"
        first = manager.describe()["servers"]["t"]["pid"]
        await _until(lambda: not manager.describe()["servers"], 10)
        await _until(lambda: not psutil.pid_exists(first), 10)  # the child exited and was reaped
        assert (await manager.call("t", cfg, "echo", {"text": "again"})).text == "again"
        assert manager.describe()["servers"]["t"]["pid"] != first
    finally:
        await manager.close()


async def test_an_mcp_server_in_use_is_not_closed_for_idleness() -> None:
    manager = McpManager(idle_close_s=0.4)
    try:
        result = await manager.call("t", stdio_config(), "slow", {"seconds": 1.5})  # several idle periods long
        assert not result.is_error and result.text == "slept 1.5s"
        assert manager.describe()["servers"]["t"]["connected"]
    finally:
        await manager.close()
