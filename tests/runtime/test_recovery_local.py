"""Crash and resume without Ray: a session's process "dies" at many points of a three-agent session
(every task of its host is dropped, nothing is saved on the way out), and a new runtime on the same
lake resumes it from its checkpoints. The Ray versions (actors killed for real) are in
tests/actors/test_recovery_ray.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.recovery_team import expected_reply, gaps, ledger_items, recovery_team, request_text
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main as troupe_main
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionResult, SessionStatus
from troupe.runtime.storage.checkpoint import CheckpointError, CheckpointStore, SessionNotFoundError


@pytest.fixture(autouse=True)
def fast_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_CHAOS_STEP_S", "0.05")


def crash(troupe: Troupe) -> None:
    """What a process death leaves: the checkpoints, nothing else (no final saves, no flush)."""
    host = troupe.backend.host  # type: ignore[attr-defined]
    for held in host.sessions.values():
        for runner in held.runners:
            runner.cancel()
    for task in list(host._background):
        task.cancel()
    host.sessions.clear()


async def resume_in_a_new_process(lake: Path, session_id: str) -> SessionResult:
    """What a new process on the same lake does: resume the session and wait for its result."""
    troupe = Troupe.local(lake=lake, checkpoints=True)
    try:
        resumed = await troupe.resume(session_id)
        result = await resumed.result(timeout=30)
        await resumed.close()
        return result
    finally:
        await troupe.shutdown()


def crash_after_saves(monkeypatch: pytest.MonkeyPatch, n: int) -> asyncio.Event:
    """An event set once ``n`` checkpoint writes (actor checkpoints and inbox entries) were made (an
    undisturbed session makes about 55): crash points that follow the session's progress, not the
    machine's speed."""
    reached = asyncio.Event()
    loop = asyncio.get_running_loop()
    count = 0

    def counted(real: Any) -> Any:
        def write(*args: Any) -> Any:
            nonlocal count
            out = real(*args)
            count += 1
            if count == n:
                loop.call_soon_threadsafe(reached.set)
            return out
        return write

    monkeypatch.setattr(CheckpointStore, "save_actor", counted(CheckpointStore.save_actor))
    monkeypatch.setattr(CheckpointStore, "add_to_inbox", counted(CheckpointStore.add_to_inbox))
    return reached


@pytest.mark.parametrize("after_saves", [1, 3, 7, 12, 18, 25, 32, 39, 45])
async def test_a_session_resumed_after_its_process_died_ends_as_if_undisturbed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_saves: int) -> None:
    lake, ledger = tmp_path / "lake", tmp_path / "ledger"
    first = Troupe.local(lake=lake, checkpoints=True)
    reached = crash_after_saves(monkeypatch, after_saves)
    session = await first.open(recovery_team())
    await session.send(request_text(ledger, "x"))
    await asyncio.wait_for(reached.wait(), 30)
    crash(first)
    monkeypatch.undo()
    assert [s.status for s in await first.sessions()] == ["running"]

    result = await resume_in_a_new_process(lake, session.id)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.reply == expected_reply("x")
    assert sorted(ledger_items(ledger)) == ["x-worker_a", "x-worker_b"]  # each side effect exactly once
    assert gaps(lake, session.id) == {"messages": 0, "tool_results": 0, "tasks": 0, "session_finished": 0}
    types = query(lake, f"select type, count(*) as n from events where session_id = '{session.id}' group by type")
    counts = dict(zip(types["type"].to_pylist(), types["n"].to_pylist(), strict=True))
    assert counts["session.resumed"] == 1 and counts["actor.restored"] >= 1


async def test_a_replayed_turn_takes_model_responses_and_tool_results_from_its_journal(tmp_path: Path) -> None:
    lake, ledger = tmp_path / "lake", tmp_path / "ledger"
    first = Troupe.local(lake=lake, checkpoints=True)
    session = await first.open(recovery_team())
    await session.send(request_text(ledger, "x"))
    while len(ledger_items(ledger)) < 2:  # both workers applied their effect: their turns are under way
        await asyncio.sleep(0.01)
    crash(first)
    assert (await resume_in_a_new_process(lake, session.id)).reply == expected_reply("x")
    replayed = query(lake, f"""select agent, type from events where session_id = '{session.id}'
                              and status = 'replayed' order by agent, type""").to_pylist()
    assert {r["agent"] for r in replayed} == {"worker_a", "worker_b"}
    assert {"tool.result", "llm.response"} <= {r["type"] for r in replayed}
    assert sorted(ledger_items(ledger)) == ["x-worker_a", "x-worker_b"]


async def test_resume_refuses_a_finished_or_unknown_session(tmp_path: Path) -> None:
    troupe = Troupe.local(lake=tmp_path / "lake", checkpoints=True)
    try:
        result = await troupe.run(recovery_team(), request_text(tmp_path / "ledger", "x"), timeout=30)
        assert result.ok
        with pytest.raises(CheckpointError, match="already ended \\(completed\\)"):
            await troupe.resume(result.session_id)
        with pytest.raises(SessionNotFoundError, match="troupe sessions list"):
            await troupe.resume("s-nothere")
    finally:
        await troupe.shutdown()
    off = Troupe.local(lake=tmp_path / "lake")
    with pytest.raises(CheckpointError, match="checkpoints=True"):
        await off.resume(result.session_id)
    await off.shutdown()


async def test_wall_budget_counts_running_time_only(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = Troupe.local(lake=lake, checkpoints=True)
    session = await first.open(recovery_team(placement_budget_s=1.0))
    await session.send(request_text(tmp_path / "ledger", "x"))
    await asyncio.sleep(0.1)
    crash(first)
    await asyncio.sleep(1.2)  # longer than the budget, while nothing runs
    result = await resume_in_a_new_process(lake, session.id)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.duration_s is not None and result.duration_s < 1.0


def test_cli_lists_sessions_and_refuses_to_resume_a_finished_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"

    async def run() -> str:
        troupe = Troupe.local(lake=lake, checkpoints=True)
        try:
            return str((await troupe.run(recovery_team(), request_text(tmp_path / "ledger", "x"), timeout=30)).session_id)
        finally:
            await troupe.shutdown()

    sid = asyncio.run(run())
    assert troupe_main(["sessions", "list", "--lake", str(lake), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["session_id"], row["status"], row["team"]) == (sid, "completed", "recovery")
    assert troupe_main(["sessions", "list", "--lake", str(lake)]) == 0
    assert sid in capsys.readouterr().out
    assert troupe_main(["resume", sid, "--lake", str(lake), "--address", "local"]) == 2
    assert "already ended (completed)" in capsys.readouterr().err


async def test_cancelling_leaves_a_consistent_checkpoint_that_cannot_be_resumed(tmp_path: Path) -> None:
    lake, ledger = tmp_path / "lake", tmp_path / "ledger"
    troupe = Troupe.local(lake=lake, checkpoints=True)
    try:
        session = await troupe.open(recovery_team())
        await session.send(request_text(ledger, "x"))
        while not ledger_items(ledger):  # the workers are mid-turn
            await asyncio.sleep(0.01)
        await session.cancel("enough")
        result = await session.result(timeout=10)
        await session.close()
        with pytest.raises(CheckpointError, match="already ended \\(cancelled\\)"):
            await troupe.resume(session.id)
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.CANCELLED
    actors = CheckpointStore(lake / "checkpoints").load_actors(session.id)
    assert actors["session"].state["status"] == "cancelled"
    for name in ("lead", "worker_a", "worker_b"):
        assert actors[name].state["turn"] is None, f"{name} checkpointed a turn in progress after the cancel"
    assert all(actors[n].state["state"] == "terminated" for n in ("lead", "worker_a", "worker_b"))


async def test_messages_acknowledged_after_the_last_checkpoint_come_back_from_the_inbox(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = Troupe.local(lake=lake, checkpoints=True)
    session = await first.open(recovery_team())
    await session.pause("worker_a")  # a full checkpoint: paused, nothing unread
    for i in range(3):
        await session.send(f"note {i}", to="worker_a")  # each acknowledged once in the inbox only
    assert (await session.describe("worker_a"))["mailbox"] == 3
    crash(first)
    second = Troupe.local(lake=lake, checkpoints=True)
    try:
        resumed = await second.resume(session.id)
        agent = second.backend.host.sessions[session.id].guests["worker_a"]  # type: ignore[attr-defined]
        assert agent.sm.state.value == "paused"
        assert [e.content for e in agent.mailbox.queued()] == ["note 0", "note 1", "note 2"]
        await resumed.close()
    finally:
        await second.shutdown()
