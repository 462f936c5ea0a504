"""Workspaces with history (issue #19, point 2), without Ray: the content-addressed snapshot store,
snapshots at turn boundaries and before writes, diff and rollback through the API and the CLI, a
git worktree per session, and a session resumed after a crash with its folder deleted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main as troupe_main
from troupe.runtime.config import TeamConfig, load_team
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.session import workspace_history
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.session.workspace_history import locked, writes_workspace
from troupe.runtime.storage import snapshots as snaps
from troupe.runtime.storage.snapshots import SnapshotStore
from troupe.tools.builtins import default_registry


def writer(request: LLMRequest, agent: str) -> LLMResponse | str:
    """A model that obeys ``write PATH=TEXT; read PATH; ...`` in the user's message, then says done."""
    last = request.messages[-1]
    if last.role == "tool":
        results = []
        for m in reversed(request.messages):
            if m.role != "tool":
                break
            results.append(str(m.content))
        return "done: " + " | ".join(reversed(results))
    calls = []
    for i, part in enumerate(p.strip() for p in str(last.content).split(";") if p.strip()):
        verb, _, rest = part.partition(" ")
        key = hashlib.sha1(f"{last.content}:{i}".encode()).hexdigest()[:10]
        if verb == "write":
            path, _, text = rest.partition("=")
            calls.append(ToolCall(id=f"w{key}", name="write_file", arguments=json.dumps({"path": path, "content": text})))
        else:
            calls.append(ToolCall(id=f"r{key}", name="read_file", arguments=json.dumps({"path": rest})))
    return LLMResponse(tool_calls=calls)


def writing_team(root: Path, **workspace: Any) -> TeamConfig:
    return team([{"id": "a", "tools": ["write_file", "read_file"], "permissions": {"level": "L2", "scopes": ["file:*"]}}],
                function="tests.runtime.test_workspace_history:writer", workspace={"root": str(root), **workspace})


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(folder).parts}


# --- the store ---------------------------------------------------------------------------------
def test_snapshots_dedupe_skip_unchanged_files_and_restore_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snaps, "RACY_NS", 0)  # files written just now count as settled
    store = SnapshotStore(tmp_path / "lake")
    ws = tmp_path / "ws"
    (ws / "sub" / "empty").mkdir(parents=True)
    (ws / "a.txt").write_text("same")
    (ws / "sub" / "b.txt").write_text("same")  # the same content: one object
    (ws / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(ws / "run.sh", 0o755)
    os.symlink("a.txt", ws / "link")
    first, new = store.snapshot(ws, "s1", reason="first")
    assert new and first is not None and first.seq == 1
    assert set(first.files) == {"a.txt", "sub/b.txt", "sub/empty", "run.sh", "link"}
    objects = store.storage.files("workspaces/objects", recursive=True)
    assert len(objects) == 2 and first.objects_new == 2 and first.bytes_new == len("same") + len("#!/bin/sh\n")

    again, new = store.snapshot(ws, "s1", reason="unchanged")
    assert not new and again is not None and again.id == first.id  # an unchanged folder makes no snapshot
    assert len(store.snapshots("s1")) == 1

    hashed: list[str] = []
    real = SnapshotStore._hash_file

    def counting(self: SnapshotStore, folder: Path, rel: str, *args: Any, **kwargs: Any) -> Any:
        hashed.append(rel)
        return real(self, folder, rel, *args, **kwargs)

    monkeypatch.setattr(SnapshotStore, "_hash_file", counting)
    (ws / "c.txt").write_text("new")
    second, new = store.snapshot(ws, "s1", reason="second")
    assert new and second is not None and second.seq == 2 and hashed == ["c.txt"]  # the others were not read
    assert second.bytes_new == 3

    other, _ = SnapshotStore(tmp_path / "lake").snapshot(ws, "s2", reason="another session, same files")
    assert other is not None and other.bytes_new == 0  # content already stored by s1
    assert len(store.storage.files("workspaces/objects", recursive=True)) == 3

    (ws / "a.txt").write_text("changed")
    (ws / "sub" / "b.txt").unlink()
    (ws / "extra").mkdir()
    (ws / "extra" / "x").write_text("x")
    os.chmod(ws / "run.sh", 0o644)
    change = store.restore(first, ws)
    assert sorted(change.lines()) == ["A sub/b.txt", "D c.txt", "D extra/x", "M a.txt", "M run.sh"]
    assert files_of(ws) == {"a.txt": "same", "sub/b.txt": "same", "run.sh": "#!/bin/sh\n", "link": "same"}
    assert not (ws / "extra").exists() and (ws / "sub" / "empty").is_dir() and os.readlink(ws / "link") == "a.txt"
    assert os.stat(ws / "run.sh").st_mode & 0o777 == 0o755
    assert store.diff_folder(first, ws).empty
    assert snaps.diff(first.files, second.files).lines() == ["A c.txt"]


def test_a_restore_reads_nothing_back_and_the_next_snapshots_trust_its_stats(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path / "lake")
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    for i in range(4):
        (ws / ("sub" if i % 2 else "") / f"f{i}.txt").write_text(f"content {i}")
    settled = time.time_ns() - 5 * snaps.RACY_NS
    for p in ws.rglob("*.txt"):
        os.utime(p, ns=(settled, settled))
    first, _ = store.snapshot(ws, "s1")
    assert first is not None
    hashed: list[str] = []
    real = SnapshotStore._hash_file

    def counting(self: SnapshotStore, folder: Path, rel: str, *args: Any, **kwargs: Any) -> Any:
        hashed.append(rel)
        return real(self, folder, rel, *args, **kwargs)

    monkeypatch.setattr(SnapshotStore, "_hash_file", counting)
    target = tmp_path / "restored"
    store.restore(first, target)
    assert hashed == []  # the manifest gives the hashes: nothing is read back
    assert files_of(target) == files_of(ws)
    assert all(p.stat().st_mtime_ns < time.time_ns() - snaps.RACY_NS for p in target.rglob("*.txt"))
    again, new = store.snapshot(target, "s1", force=True)  # a manifest of this folder, with its stats
    assert new and again is not None and again.tree == first.tree and hashed == []
    _, new = SnapshotStore(tmp_path / "lake").snapshot(target, "s1")  # a new process, from that manifest
    assert not new and hashed == []
    (target / "f0.txt").write_text("CONTENT 0")  # the same size, just after the restore: still seen
    third, new = store.snapshot(target, "s1")
    assert new and third is not None and hashed == ["f0.txt"] and snaps.diff(first.files, third.files).lines() == ["M f0.txt"]


def test_which_tools_are_snapshotted_before_they_run() -> None:
    tools = {t.name: t.spec for t in default_registry().resolve(["write_file", "read_file", "shell", "calculator"])}
    assert writes_workspace(tools["write_file"]) and writes_workspace(tools["shell"])
    assert not writes_workspace(tools["read_file"]) and not writes_workspace(tools["calculator"])


# --- sessions ----------------------------------------------------------------------------------
async def test_a_session_is_snapshotted_and_rolled_back_through_the_api(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    cfg = writing_team(tmp_path / "ws")
    session = await troupe.open(cfg, conversation=True)
    await session.send("write a.txt=one")
    assert (await session.result(timeout=20)).status is SessionStatus.RUNNING
    await session.send("write a.txt=two; write b.txt=bee")
    await session.result(timeout=20)
    done = await session.end()
    await session.close()
    sid = str(done.session_id)
    folder = tmp_path / "ws" / sid
    assert files_of(folder) == {"a.txt": "two", "b.txt": "bee"}

    log = await troupe.workspace_log(sid)
    # Before turn 1's write there was no folder yet; turn 2's first write found turn 1's state already
    # snapshotted; its second (run concurrently) waited for the first and snapshotted what it wrote;
    # the session's end changed nothing.
    assert [(s.seq, s.reason) for s in log] == [(1, "turn 1"), (2, "before write_file"), (3, "turn 2")]
    assert set(log[0].files) == {"a.txt"} and len(log[1].files) == 1 and set(log[2].files) == {"a.txt", "b.txt"}
    assert (await troupe.workspace_diff(sid, "1", "3")).lines() == ["M a.txt", "A b.txt"]  # by path
    assert (await troupe.workspace_diff(sid)).empty

    (folder / "stray.txt").write_text("not snapshotted yet")
    back = await troupe.workspace_rollback(sid, to=log[0].id)
    assert back.to == log[0].id and sorted(back.diff.lines()) == ["D b.txt", "D stray.txt", "M a.txt"]
    assert not back.live and back.pid == os.getpid()  # closed: restored here, by the caller
    assert files_of(folder) == {"a.txt": "one"}
    after = await troupe.workspace_log(sid)
    assert [s.reason for s in after[3:]] == ["before rollback", f"rollback to {log[0].id}"]
    assert "stray.txt" in after[3].files  # nothing recorded is lost: the replaced state is a snapshot
    undo = await troupe.workspace_rollback(sid)  # no --to: back to the state before the last change
    assert undo.to == after[3].id and files_of(folder)["stray.txt"] == "not snapshotted yet"

    await troupe.backend.flush()  # type: ignore[attr-defined]
    events = rows(lake, f"select type, agent, payload from events where session_id='{sid}' "
                        "and type like 'workspace.%' order by ts")
    kinds = [e["type"] for e in events]
    # 3 in the session; the first rollback 2 (before, after); the undo 1 (its "before" was the latest already)
    assert kinds.count("workspace.snapshot") == 6 and kinds.count("workspace.rollback") == 2
    rollback = json.loads(next(e for e in events if e["type"] == "workspace.rollback")["payload"])
    assert (rollback["to"], rollback["replaced"], rollback["removed"], rollback["by"]) == (log[0].id, after[3].id, 2, "api")


async def test_a_live_sessions_rollback_goes_through_its_host_and_its_event_stream(troupe: Troupe, lake: Path,
                                                                                  tmp_path: Path) -> None:
    session = await troupe.open(writing_team(tmp_path / "ws"), conversation=True)
    await session.send("write a.txt=one")
    await session.result(timeout=20)
    await session.send("write a.txt=two")
    await session.result(timeout=20)
    sid = str(session.id)
    folder = tmp_path / "ws" / sid
    async with locked(folder, exclusive=False, timeout=1):  # a writing call under way: the rollback waits
        with pytest.raises(workspace_history.WorkspaceBusyError):
            await troupe.workspace_rollback(sid, to="1", timeout_s=0.3)
    back = await troupe.workspace_rollback(sid, to="1")
    assert back.live and back.to.startswith("1-") and files_of(folder) == {"a.txt": "one"}
    await session.send("write b.txt=after")  # the session goes on with the restored folder
    await session.result(timeout=20)
    await session.end()
    await session.close()
    assert files_of(folder) == {"a.txt": "one", "b.txt": "after"}
    events = rows(lake, f"select type, agent, payload from events where session_id='{sid}' "
                        "and type = 'workspace.rollback'")
    payload = json.loads(events[0]["payload"])
    assert events[0]["agent"] == "workspace" and (payload["live"], payload["by"], payload["pid"]) == (True, "api", os.getpid())


async def test_a_session_resumed_after_a_crash_finds_its_deleted_folder_restored(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = Troupe.local(lake=lake, checkpoints=True)
    cfg = writing_team(tmp_path / "ws")
    session = await first.open(cfg, conversation=True)
    await session.send("write notes/a.txt=from turn one")
    await session.result(timeout=20)
    sid = str(session.id)
    await first.backend.host.close()  # type: ignore[attr-defined]  # the process "dies" between turns
    await first.backend.buffer.flush()  # type: ignore[attr-defined]
    folder = tmp_path / "ws" / sid
    shutil.rmtree(folder)  # another node: no folder there

    second = Troupe.local(lake=lake, checkpoints=True)
    try:
        back = await second.resume(sid)
        await back.send("read notes/a.txt; write b.txt=two")
        turn = await back.result(timeout=20)
        assert turn.status is SessionStatus.RUNNING and "from turn one" in (turn.reply or "")
        await back.end()
        await back.close()
    finally:
        await second.shutdown()
        await first.shutdown()
    assert files_of(folder) == {"notes/a.txt": "from turn one", "b.txt": "two"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


async def test_a_git_worktree_per_session_snapshotted_and_rolled_back(troupe: Troupe, tmp_path: Path) -> None:
    repo = tmp_path / "project" / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("committed\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    team_file = tmp_path / "project" / "team.yaml"
    data = writing_team(tmp_path / "ws").model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["workspace"]["repo"] = "repo"  # relative to the team file
    team_file.write_text(json.dumps(data))
    cfg = load_team(team_file)
    assert cfg.workspace.repo == str(repo.resolve())

    result = await troupe.run(cfg, "read README.md; write src/new.py=print(1)", timeout=20)
    assert result.ok, result.error
    sid = str(result.session_id)
    folder = tmp_path / "ws" / sid
    assert git(folder, "rev-parse", "--abbrev-ref", "HEAD") == f"troupe/{sid}"  # a branch per session
    assert "committed" in (result.reply or "")
    log = await troupe.workspace_log(sid)
    assert [s.reason for s in log] == ["before write_file", "session completed"]
    assert set(log[0].files) == {"README.md"} and set(log[1].files) == {"README.md", "src/new.py"}  # no .git

    await troupe.workspace_rollback(sid, to="1")
    assert files_of(folder) == {"README.md": "committed\n"} and (folder / ".git").is_file()  # the worktree stays
    assert git(folder, "status", "--porcelain") == ""

    shutil.rmtree(folder)  # gone (another node): the worktree comes back
    from troupe.runtime.session.workspace_history import prepare, store_for

    restored = prepare(cfg.workspace, sid, folder, store_for(troupe.lake))
    assert restored is not None and restored.reason == "rollback to " + log[0].id
    assert files_of(folder) == {"README.md": "committed\n"} and git(folder, "rev-parse", "--abbrev-ref", "HEAD") == f"troupe/{sid}"


async def test_a_rollback_waits_for_a_writing_call_under_way(tmp_path: Path) -> None:
    folder = tmp_path / "ws" / "s"
    folder.mkdir(parents=True)
    async with locked(folder, exclusive=False, timeout=1) as writing:  # what a write_file call holds
        assert writing
        async with locked(folder, exclusive=True, timeout=0.2) as rollback:
            assert not rollback  # a rollback (or snapshot) cannot start while it runs
    async with locked(folder, exclusive=True, timeout=0.2) as rollback:
        assert rollback


# --- the CLI on a real lake ----------------------------------------------------------------------
async def test_the_cli_lists_diffs_and_rolls_back(troupe: Troupe, lake: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    result = await troupe.run(writing_team(tmp_path / "ws"), "write a.txt=1; write b.txt=2", timeout=20)
    sid = str(result.session_id)
    await troupe.backend.flush()  # type: ignore[attr-defined]
    folder = tmp_path / "ws" / sid
    (folder / "a.txt").write_text("edited by hand")

    def cli(command: str, *args: str) -> str:
        capsys.readouterr()
        assert troupe_main(["workspace", command, sid, *args, "--lake", str(lake)]) == 0
        return capsys.readouterr().out

    out = await asyncio.to_thread(cli, "log")
    assert out.count("\n") == 1 and out.startswith("1-") and "2 files" in out and "session completed" in out
    assert (await asyncio.to_thread(cli, "diff")).splitlines() == ["M a.txt"]  # the hand edit, since snapshot 1
    back = json.loads(await asyncio.to_thread(cli, "rollback", "--to", "1", "--json"))
    assert back["diff"]["changed"] == ["a.txt"] and files_of(folder) == {"a.txt": "1", "b.txt": "2"}
    out = await asyncio.to_thread(cli, "log")
    assert [line.split()[0][:2] for line in out.splitlines()] == ["1-", "2-", "3-"] and "rollback to 1-" in out
    assert json.loads(await asyncio.to_thread(cli, "diff", "1", "--to", "2", "--json"))["changed"] == ["a.txt"]
    assert rows(lake, f"select json_extract_string(payload, '$.by') who from events where session_id='{sid}' "
                      "and type='workspace.rollback'") == [{"who": "cli"}]
    assert troupe_main(["workspace", "log", "no-such-session", "--lake", str(lake)]) == 1
