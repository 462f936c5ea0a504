"""A session's workspace and its history: the folder (plain, or a git worktree), its snapshots, rollback.

The folder is ``workspace.path_for(session id)``. With ``workspace.repo`` it is a git worktree of that
repository on the branch ``<branch_prefix><session id>``, made from ``ref`` the first time a host of
the session needs it (``git worktree add -b``). With ``workspace.snapshots`` (the default) and a lake,
the runtime snapshots it into ``<lake>/workspaces`` (:mod:`troupe.runtime.storage.snapshots`):

- at turn boundaries: when a turn of a conversation ends and when the session ends (the supervisor's
  host takes them);
- before any tool call that can write it (:func:`writes_workspace`), in the calling agent's process.

A folder equal to the latest snapshot makes no new one. When a host of the session finds the folder
missing (a session resumed on another node, or after the folder was deleted), it restores the latest
snapshot first (into a fresh worktree of the session's branch when there is a repository).

Locking: a lock file beside the folder (``<root>/.<session id>.lock``, ``flock``) orders what touches
it on one machine. A writing tool call holds it shared while it runs; a snapshot and a rollback hold it
exclusive. So a rollback waits for the writing calls under way to end (up to ``timeout_s``, then it
fails and changes nothing) and the next ones wait for it; a snapshot that cannot get the lock within
:data:`SNAPSHOT_WAIT_S` (a long shell command is writing) is skipped. Reads are not locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field

from troupe.runtime.config import PermissionLevel
from troupe.runtime.errors import ToolExecutionError, TroupeError
from troupe.runtime.events import Emitter, WorkspaceRollbackPayload, WorkspaceSnapshotPayload, make_event
from troupe.runtime.safety import WorkspaceConfig
from troupe.runtime.storage.snapshots import Diff, SnapshotManifest, SnapshotNotFoundError, SnapshotStore
from troupe.tools.spec import Execution, ToolSpec

log = logging.getLogger(__name__)

WRITE_SCOPES: Final = ("file:write", "shell:exec")
SNAPSHOT_WAIT_S: Final = 10.0
"""How long a snapshot waits for writing calls under way before it is skipped."""
WRITER_WAIT_S: Final = 300.0
"""How long a writing call waits for a rollback (or snapshot) under way."""
_KEEP: Final = 512

_ORDER = list(PermissionLevel)


def writes_workspace(spec: ToolSpec) -> bool:
    """Whether a call of this tool is snapshotted before it runs: level L2 or above, and it holds a
    scope that writes (``file:write``, ``shell:exec`` or a wider grant of them), or it has no scopes
    and runs in the agent's process (an inline Python tool could do anything to the folder). MCP and
    other out-of-process tools with other scopes (``network:external``, ``email:send``) do not."""
    if _ORDER.index(spec.level) < _ORDER.index(PermissionLevel.L2):
        return False
    if any(s in WRITE_SCOPES or s in ("file:*", "shell:*", "*") for s in spec.scopes):
        return True
    return not spec.scopes and spec.execution is Execution.INLINE


# --- locks ---------------------------------------------------------------------------------
def lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.lock"


@contextlib.asynccontextmanager
async def locked(folder: Path, *, exclusive: bool, timeout: float) -> AsyncIterator[bool]:
    """Hold the folder's lock (shared or exclusive) for the block; yields False when it could not be
    had within ``timeout`` (the block runs unlocked: the caller decides)."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    got = False
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.02)
        yield got
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def locked_sync(folder: Path, *, timeout: float) -> Iterator[None]:
    """The exclusive lock from synchronous code (the CLI); raises when it cannot be had in time."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(f"a tool call is still writing {folder} after {timeout:g}s; try again "
                                             "(or pause the session first)", folder=str(folder)) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


class WorkspaceBusyError(TroupeError):
    """A rollback could not get the workspace: a tool call kept writing it."""


# --- the folder ------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)


def make_worktree(cfg: WorkspaceConfig, session_id: str, folder: Path) -> None:
    """``git worktree add`` the session's branch at ``folder`` (made from ``ref`` the first time)."""
    assert cfg.repo is not None
    repo = Path(cfg.repo).expanduser()
    branch = f"{cfg.branch_prefix}{session_id}"
    _git(repo, "worktree", "prune")  # a deleted folder's worktree entry would refuse the name
    if _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0:
        done = _git(repo, "worktree", "add", str(folder), branch)
    else:
        done = _git(repo, "worktree", "add", "-b", branch, str(folder), cfg.ref)
    if done.returncode != 0:
        raise TroupeError(f"cannot make the session's worktree of {repo} at {folder}: {done.stderr.strip()}",
                          repo=str(repo), folder=str(folder))


def excluded(cfg: WorkspaceConfig) -> tuple[str, ...]:
    """Names a snapshot leaves out: a worktree's ``.git`` (git keeps that history itself)."""
    return (".git",) if cfg.repo else ()


def prepare(cfg: WorkspaceConfig, session_id: str, folder: Path, store: SnapshotStore | None) -> SnapshotManifest | None:
    """Make the folder ready when it is missing: the worktree (with a repository), then the latest
    snapshot restored into it. Returns the snapshot restored, if any."""
    if folder.exists():
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    if cfg.repo:
        make_worktree(cfg, session_id, folder)
    latest = store.latest(session_id) if store is not None else None
    if latest is not None:
        store.restore(latest, folder, exclude=excluded(cfg))  # type: ignore[union-attr]
        log.info("workspace of session %s restored from snapshot %s", session_id, latest.id)
    return latest


# --- one session, in one process ------------------------------------------------------------
class WorkspaceHistory:
    """The workspace of one session as one process (host) sees it."""

    def __init__(self, cfg: WorkspaceConfig, session_id: str, run_id: str, lake: str | None, emit: Emitter) -> None:
        self.cfg = cfg
        self.session_id = session_id
        self.run_id = run_id
        self.folder = cfg.path_for(session_id)
        self.store = store_for(lake) if lake and cfg.snapshots else None
        self.emit = emit
        self._ready: asyncio.Task[Any] | None = None

    def arm(self) -> None:
        """Make the folder ready in the background (again, when it went missing since)."""
        if self._ready is None or (self._ready.done() and not self.folder.exists()):
            self._ready = asyncio.get_running_loop().create_task(self._prepare())

    async def _prepare(self) -> None:
        if self.folder.exists():
            return
        async with locked(self.folder, exclusive=True, timeout=WRITER_WAIT_S):
            try:
                await asyncio.to_thread(prepare, self.cfg, self.session_id, self.folder, self.store)
            except Exception:  # noqa: BLE001  (the tools then work in a plain folder; the log says why)
                log.exception("the workspace of session %s could not be prepared", self.session_id)

    async def ready(self) -> None:
        if self._ready is not None:
            await asyncio.shield(self._ready)

    async def snapshot(self, reason: str, **fields: Any) -> SnapshotManifest | None:
        """Snapshot now (when the folder changed since the latest); skipped, never raised, on trouble."""
        if self.store is None:
            return None
        await self.ready()
        if not self.folder.is_dir():
            return None
        async with locked(self.folder, exclusive=True, timeout=SNAPSHOT_WAIT_S) as got:
            if not got:
                log.warning("snapshot of session %s skipped (%s): a tool call kept writing", self.session_id, reason)
                return None
            try:
                manifest, new = await asyncio.to_thread(self.store.snapshot, self.folder, self.session_id, reason=reason,
                                                        run_id=self.run_id, exclude=excluded(self.cfg))
            except Exception:  # noqa: BLE001  (a failed snapshot must not fail the session)
                log.exception("snapshot of session %s failed (%s)", self.session_id, reason)
                return None
        if new and manifest is not None:
            self.emit(snapshot_payload(manifest), status="ok", duration_ms=manifest.seconds * 1e3, **fields)
        return manifest

    @contextlib.asynccontextmanager
    async def guard(self, spec: ToolSpec) -> AsyncIterator[None]:
        """Around one tool call: the folder is ready; a writing call is snapshotted before it and
        holds the lock shared while it runs (a rollback waits for it, and it for a rollback)."""
        await self.ready()
        if not writes_workspace(spec):
            yield
            return
        await self.snapshot(f"before {spec.name}", tool=spec.name)
        async with locked(self.folder, exclusive=False, timeout=WRITER_WAIT_S) as got:
            if not got:
                raise ToolExecutionError(f"the workspace is being rolled back; {spec.name!r} did not run", tool=spec.name)
            yield


def snapshot_payload(m: SnapshotManifest) -> WorkspaceSnapshotPayload:
    return WorkspaceSnapshotPayload(snapshot=m.id, seq=m.seq, reason=m.reason, files=len(m.files),
                                    bytes_total=m.bytes_total, bytes_new=m.bytes_new, folder=m.folder)


_STORES: OrderedDict[str, SnapshotStore] = OrderedDict()
_HISTORIES: OrderedDict[tuple[str, str], WorkspaceHistory] = OrderedDict()


def store_for(lake: str) -> SnapshotStore:
    """This process's store of a lake (one per lake: it keeps the hashes it knows)."""
    store = _STORES.get(lake) or SnapshotStore(lake)
    _STORES[lake] = store
    _STORES.move_to_end(lake)
    while len(_STORES) > 16:
        _STORES.popitem(last=False)
    return store


def history_for(spec: Any, emitter: Callable[[Any, str], Emitter]) -> WorkspaceHistory | None:
    """The history of a session (a :class:`~troupe.runtime.session.spec.SessionSpec`) in this process,
    armed; ``None`` when it has neither snapshots (``snapshots: false`` or no lake) nor a repository."""
    cfg: WorkspaceConfig = spec.team.workspace
    lake = getattr(spec, "lake", None)
    if not cfg.repo and not (cfg.snapshots and lake):
        return None
    key = (str(spec.session_id), str(cfg.path_for(spec.session_id)))
    history = _HISTORIES.get(key)
    if history is None:
        history = WorkspaceHistory(cfg, key[0], str(spec.run_id), lake, emitter(spec, "workspace"))
        _HISTORIES[key] = history
        while len(_HISTORIES) > _KEEP:
            _HISTORIES.popitem(last=False)
    history.arm()
    return history


def guard_for(spec: Any, emitter: Callable[[Any, str], Emitter]) -> Callable[[ToolSpec], AbstractAsyncContextManager[None]] | None:
    """The ``snapshot`` hook of an agent's :class:`~troupe.runtime.agent.deps.AgentDeps`."""
    history = history_for(spec, emitter)
    return history.guard if history is not None else None


def boundary_for(spec: Any, emitter: Callable[[Any, str], Emitter]) -> Callable[[str], Any] | None:
    """The supervisor's ``on_boundary`` hook: a snapshot when a turn or the session ends."""
    history = history_for(spec, emitter)
    return history.snapshot if history is not None else None


# --- log, diff, rollback (the API and the CLI) -----------------------------------------------
class RollbackResult(BaseModel):
    session_id: str
    to: str
    replaced: str | None = None
    snapshot: str | None = None
    diff: Diff
    folder: str
    live: bool = False
    """True: the session was live and its host restored the folder, on the node holding it, under the
    lock its tool calls take. False: it was not, and the caller's process restored the folder on the
    caller's machine (the one named in the snapshots)."""
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    """Where it ran: the machine and the process that restored the folder."""


def log_of(lake: str, session_id: str) -> list[SnapshotManifest]:
    return store_for(lake).snapshots(session_id)


def diff_of(lake: str, session_id: str, a: str | None = None, b: str | None = None) -> Diff:
    """From snapshot ``a`` (default: the latest) to snapshot ``b`` (default: the folder now)."""
    store = store_for(lake)
    old = store.get(session_id, a)
    if b is not None:
        from troupe.runtime.storage.snapshots import diff

        return diff(old.files, store.get(session_id, b).files)
    return store.diff_folder(old, old.folder, exclude=(".git",) if (Path(old.folder) / ".git").is_file() else ())


def roll_back(store: SnapshotStore, session_id: str, folder: Path, to: str | None, *, exclude: tuple[str, ...],
              live: bool = False) -> tuple[RollbackResult, list[SnapshotManifest]]:
    """The rollback itself, with the folder's lock held: snapshot the state it replaces, restore
    ``to`` (default: the latest snapshot that differs from the folder now), snapshot the result.
    Returns the result and the snapshots it made."""
    snaps = store.snapshots(session_id)
    if not snaps:
        raise SnapshotNotFoundError(f"session {session_id} has no workspace snapshots in {store.storage}",
                                    session=session_id)
    latest = snaps[-1]
    before = None
    if folder.is_dir():
        before, _ = store.snapshot(folder, session_id, reason="before rollback", run_id=latest.run_id, exclude=exclude)
    if to is None:
        now = before.tree if before is not None else None
        earlier = [s for s in snaps if s.tree != now]
        if not earlier:
            raise SnapshotNotFoundError(f"session {session_id}: no snapshot differs from its folder now; "
                                        "nothing to roll back to", session=session_id)
        target = earlier[-1]
    else:
        target = store.get(session_id, to)
    change = store.restore(target, folder, exclude=exclude)
    after, _ = store.snapshot(folder, session_id, reason=f"rollback to {target.id}", run_id=latest.run_id,
                              exclude=exclude)
    result = RollbackResult(session_id=session_id, to=target.id, replaced=before.id if before else None,
                            snapshot=after.id if after else None, diff=change, folder=str(folder), live=live)
    return result, [m for m in (before, after) if m is not None and m.seq > latest.seq]


def rollback_payload(result: RollbackResult, by: str) -> WorkspaceRollbackPayload:
    d = result.diff
    return WorkspaceRollbackPayload(to=result.to, replaced=result.replaced, snapshot=result.snapshot, added=len(d.added),
                                    removed=len(d.removed), changed=len(d.changed), by=by, folder=result.folder,
                                    live=result.live, host=result.host, pid=result.pid)


def rollback(lake: str, session_id: str, to: str | None = None, *, by: str = "api",
             timeout_s: float = 60.0) -> RollbackResult:
    """Restore the session's folder, here (the session is not live; a live one's host does it: see
    :mod:`troupe.runtime.session.workspace_live`), to snapshot ``to`` (default: the latest snapshot
    that differs from the folder now, i.e. undo the last change). The state it replaces is
    snapshotted first, the restored state after, and a ``workspace.rollback`` event goes to the lake."""
    store = store_for(lake)
    latest = store.get(session_id)
    folder = Path(latest.folder)
    skip = (".git",) if (folder / ".git").is_file() else ()
    with locked_sync(folder, timeout=timeout_s):
        result, made = roll_back(store, session_id, folder, to, exclude=skip)
    run_id = latest.run_id or session_id
    events = [make_event(snapshot_payload(m), run_id=run_id, session_id=session_id, agent="workspace", status="ok")
              for m in made]
    events.append(make_event(rollback_payload(result, by), run_id=run_id, session_id=session_id, agent="workspace",
                             status="ok"))
    _record(lake, events)
    return result


def _record(lake: str, events: list[Any]) -> None:
    from troupe.runtime.eventlog.lake import LakeWriter
    from troupe.runtime.events import events_to_columns

    LakeWriter(lake).write(events_to_columns(events))


__all__ = [
    "SNAPSHOT_WAIT_S",
    "RollbackResult",
    "WorkspaceBusyError",
    "WorkspaceHistory",
    "boundary_for",
    "diff_of",
    "guard_for",
    "history_for",
    "log_of",
    "prepare",
    "roll_back",
    "rollback",
    "rollback_payload",
    "store_for",
    "writes_workspace",
]
