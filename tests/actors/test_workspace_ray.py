"""Workspaces with history on a real local Ray (issue #19, point 2): snapshots taken in the host
actors, diff and rollback through the API in both placements, and a dedicated session whose agent's
actor dies while its folder is gone: the restarted host restores the folder from the lake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runtime.test_workspace_history import files_of, writing_team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_snapshot_diff_and_rollback_in_both_placements(troupe_ray: Troupe, tmp_path: Path, placement: str) -> None:
    session = await troupe_ray.open(writing_team(tmp_path / "ws"), placement=placement, conversation=True)
    await session.send("write a.txt=one")
    await session.result(timeout=60)
    await session.send("write a.txt=two")
    await session.result(timeout=60)
    done = await session.end()
    await session.close()
    sid = str(done.session_id)
    folder = tmp_path / "ws" / sid
    log = await troupe_ray.workspace_log(sid)
    assert [s.reason for s in log] == ["turn 1", "turn 2"]
    assert (await troupe_ray.workspace_diff(sid, "1", "2")).lines() == ["M a.txt"]
    back = await troupe_ray.workspace_rollback(sid, to="1")
    assert back.replaced == log[1].id and files_of(folder) == {"a.txt": "one"}
    await troupe_ray.backend.flush()  # type: ignore[attr-defined]
    events = query(troupe_ray.lake, f"select type, payload from events where session_id='{sid}' "
                                    "and type like 'workspace.%' order by ts").to_pylist()
    assert [e["type"] for e in events] == ["workspace.snapshot"] * 3 + ["workspace.rollback"]
    assert json.loads(events[-1]["payload"])["to"] == log[0].id


async def test_a_restarted_agent_finds_its_deleted_folder_restored(troupe_ray: Troupe, tmp_path: Path) -> None:
    import ray

    from troupe.actors.naming import NAMESPACE, dedicated_name

    session = await troupe_ray.open(writing_team(tmp_path / "ws"), placement="dedicated", conversation=True)
    await session.send("write notes/a.txt=from turn one")
    await session.result(timeout=60)
    folder = tmp_path / "ws" / str(session.id)
    shutil.rmtree(folder)  # as on another node: no folder there
    ray.kill(ray.get_actor(dedicated_name(session.id, "a"), namespace=NAMESPACE), no_restart=False)
    await session.send("read notes/a.txt; write b.txt=two")  # reaches the restarted actor
    turn = await session.result(timeout=60)
    assert turn.status is SessionStatus.RUNNING and "from turn one" in (turn.reply or "")
    await session.end()
    await session.close()
    assert files_of(folder) == {"notes/a.txt": "from turn one", "b.txt": "two"}


async def test_a_live_sessions_rollback_runs_in_its_hosts_process(troupe_ray: Troupe, tmp_path: Path) -> None:
    import os

    import ray

    from troupe.actors.naming import NAMESPACE, dedicated_name
    from troupe.runtime.ids import SUPERVISOR

    session = await troupe_ray.open(writing_team(tmp_path / "ws"), placement="dedicated", conversation=True)
    await session.send("write a.txt=one")
    await session.result(timeout=60)
    await session.send("write a.txt=two")
    await session.result(timeout=60)
    sid = str(session.id)
    folder = tmp_path / "ws" / sid
    host = ray.get_actor(dedicated_name(session.id, SUPERVISOR), namespace=NAMESPACE)
    host_pid = (await host.describe.remote())["pid"]
    back = await troupe_ray.workspace_rollback(sid, to="1")
    assert back.live and back.pid == host_pid != os.getpid() and files_of(folder) == {"a.txt": "one"}
    # A driver that did not open the session (a notebook, the CLI) finds its host by name.
    placed = troupe_ray.backend._sessions.pop(session.id)  # type: ignore[attr-defined]
    try:
        again = await troupe_ray.workspace_rollback(sid, to="2")
    finally:
        troupe_ray.backend._sessions[session.id] = placed  # type: ignore[attr-defined]
    assert again.live and again.pid == host_pid and files_of(folder) == {"a.txt": "two"}
    await session.end()
    await session.close()
    closed = await troupe_ray.workspace_rollback(sid, to="1")  # no host holds it now: restored here
    assert not closed.live and closed.pid == os.getpid() and files_of(folder) == {"a.txt": "one"}
    await troupe_ray.backend.flush()  # type: ignore[attr-defined]
    events = query(troupe_ray.lake, f"select payload from events where session_id='{sid}' "
                                    "and type = 'workspace.rollback' order by ts").to_pylist()
    assert [(p["live"], p["pid"]) for p in map(json.loads, (e["payload"] for e in events))] == [
        (True, host_pid), (True, host_pid), (False, os.getpid())]
