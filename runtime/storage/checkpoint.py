"""Checkpoints: what a session's logical actors need to come back after a crash or a cluster stop.

A session's checkpoints live in a *checkpoint store*: a local directory by default
(``<lake>/checkpoints``) or any ``pyarrow.fs`` location (:mod:`troupe.runtime.storage.location`), so a session
started on one cluster can be resumed on another that reaches the same bucket::

    <store>/sessions/<session id>/manifest.json        the session: team, run, placement, input, status
    <store>/sessions/<session id>/actors/<name>.json   each logical actor's latest state
    <store>/sessions/<session id>/inbox/<agent>/...    messages delivered since the agent's last save
    <store>/sessions/<session id>/tools/<key>.json     a tool result, by the call's idempotency key

An actor's file is replaced whole (atomically) at its turn boundaries and before it acknowledges
a service call it applied, so the newest file is always a state the rest of the session may rely
on. A message delivered to an agent is acknowledged once it is in the agent's *inbox* (small
JSON-lines files, one per batch of messages that arrived together: cheaper than saving the whole
agent); the agent's next save takes them in and clears them. What an agent did inside the turn in progress (model responses,
tool results) is in the same file as the turn's *journal*: a replay after a crash takes those from
the journal instead of calling the model or the tool again.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from troupe.runtime.config import Placement, TeamConfig
from troupe.runtime.errors import TroupeError
from troupe.runtime.ids import RunId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.redact import redact_text
from troupe.runtime.storage.location import Storage, open_storage

CHECKPOINT_FORMAT: Final = 1
CHECKPOINT_DIR: Final = "checkpoints"
"""The default store's folder inside the lake."""

ActorKind = Literal["agent", "blackboard", "tasks", "supervisor", "memory"]


class CheckpointError(TroupeError):
    """A checkpoint that cannot be read or used (missing session, unknown format)."""


class SessionNotFoundError(CheckpointError, LookupError):
    """No checkpoint of this session in the store."""


class SessionManifest(BaseModel):
    """What a session was started with: enough to start its actors again elsewhere."""

    format: int = CHECKPOINT_FORMAT
    session_id: SessionId
    run_id: RunId
    team: TeamConfig
    placement: Placement
    stream_tokens: bool = False
    conversation: bool = False
    lake: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    start_error: str | None = None
    """Why the session failed while its actors were made (it never ran: not resumable)."""
    owner: str | None = None
    """The user the session belongs to (``troupe serve``), so a resume keeps it."""


class ActorCheckpoint(BaseModel):
    """One logical actor's state at a point the rest of the session may rely on."""

    format: int = CHECKPOINT_FORMAT
    session_id: SessionId
    name: str
    kind: ActorKind
    seq: int
    """Increases with every save of this actor (a newer file never has a smaller one)."""
    saved_at: datetime
    state: dict[str, Any]
    applied: dict[str, Any] = Field(default_factory=dict)
    """Service calls already applied, by request id, with their portable result (see :func:`portable`)."""
    outbox: list[Envelope] = Field(default_factory=list)
    """Messages this actor produced that their recipients have not acknowledged yet."""


class SessionSummary(BaseModel):
    """A line of ``troupe sessions list``: from the manifest and the supervisor's checkpoint."""

    session_id: SessionId
    run_id: RunId
    team: str
    placement: Placement
    status: str
    """The supervisor's status (``running`` for a session that was interrupted and can be resumed)."""
    created_at: datetime
    saved_at: datetime | None = None
    reply: str | None = None
    error: str | None = None
    owner: str | None = None
    """The user the session belongs to (``troupe serve``; ``None``: started elsewhere)."""


def default_location(lake: str | Path) -> str:
    """``<lake>/checkpoints``: the store used when none is given."""
    ref = open_storage(str(lake)).ref(CHECKPOINT_DIR)
    return str(ref)


def checkpoint_location(lake: str | Path, checkpoints: bool | str | Path | None) -> str | None:
    """The store a runtime uses: ``True`` the lake's own (``<lake>/checkpoints``), a location as
    given (checked), ``False``/``None`` none."""
    if checkpoints is None or checkpoints is False:
        return None
    if checkpoints is True:
        return default_location(lake)
    return open_storage(str(checkpoints)).location


@functools.lru_cache(maxsize=64)
def store_at(location: str) -> CheckpointStore:
    """The store at ``location``, opened once per process (hosts, the scheduler and the API share it)."""
    return CheckpointStore(location)


class CheckpointStore:
    """Reads and writes checkpoints at one location (thread-safe: every write is one whole file)."""

    def __init__(self, location: str | Path | Storage) -> None:
        self.storage = open_storage(location)
        self.location = self.storage.location

    # --- sessions -----------------------------------------------------------------------------
    def save_manifest(self, manifest: SessionManifest) -> None:
        self.storage.write_bytes(f"sessions/{manifest.session_id}/manifest.json", manifest.model_dump_json().encode())

    def load_manifest(self, session_id: str) -> SessionManifest:
        try:
            raw = self.storage.read_bytes(f"sessions/{session_id}/manifest.json")
        except FileNotFoundError:
            raise SessionNotFoundError(
                f"no checkpoint of session {session_id!r} in {self.storage}; `troupe sessions list` shows the "
                "sessions there (a session is checkpointed when it runs with dedicated placement or "
                "with checkpoints on; check --lake)", session=session_id) from None
        manifest = SessionManifest.model_validate_json(raw)
        _check_format(manifest.format, f"session {session_id}")
        return manifest

    def session_ids(self) -> list[str]:
        return self.storage.dirs("sessions")

    def summaries(self) -> list[SessionSummary]:
        """Every checkpointed session, newest first."""
        out = []
        for sid in self.session_ids():
            try:
                manifest = self.load_manifest(sid)
            except (CheckpointError, ValueError):
                continue  # a session being written right now, or from a newer Troupe
            supervisor = self.load_actors(sid, names=["session"]).get("session")
            state = supervisor.state if supervisor else {}
            result = state.get("result") or {}
            failed_at_start = manifest.start_error is not None and not result
            out.append(SessionSummary(
                session_id=manifest.session_id, run_id=manifest.run_id, team=manifest.team.name,
                placement=manifest.placement,
                status="failed" if failed_at_start else str(state.get("status", "running")),
                created_at=manifest.created_at, saved_at=supervisor.saved_at if supervisor else None,
                reply=result.get("reply"), owner=manifest.owner,
                error=f"failed when it was created: {manifest.start_error}" if failed_at_start else result.get("error")))
        return sorted(out, key=lambda s: s.created_at, reverse=True)

    # --- actors -------------------------------------------------------------------------------
    def save_actor(self, checkpoint: ActorCheckpoint) -> None:
        self.storage.write_bytes(f"sessions/{checkpoint.session_id}/actors/{checkpoint.name}.json",
                                 checkpoint.model_dump_json().encode())

    def load_actors(self, session_id: str, *, names: list[str] | None = None) -> dict[str, ActorCheckpoint]:
        """The latest checkpoint of each logical actor of a session (``names``: only those)."""
        rels = ([f"sessions/{session_id}/actors/{n}.json" for n in names] if names is not None
                else self.storage.files(f"sessions/{session_id}/actors", suffix=".json"))
        out: dict[str, ActorCheckpoint] = {}
        for rel in rels:
            try:
                cp = ActorCheckpoint.model_validate_json(self.storage.read_bytes(rel))
            except FileNotFoundError:
                continue
            _check_format(cp.format, f"actor {rel}")
            out[cp.name] = cp
        return out

    # --- inboxes ------------------------------------------------------------------------------
    def add_to_inbox(self, session_id: str, agent: str, envelopes: list[Envelope]) -> str:
        """Keep messages delivered together until the agent's next checkpoint (one JSON-lines file);
        returns the file's name."""
        ts = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{ts}-{envelopes[0].id}.jsonl"
        body = b"\n".join(e.model_dump_json().encode() for e in envelopes)
        self.storage.write_bytes(f"sessions/{session_id}/inbox/{agent}/{name}", body)
        return name

    def inbox(self, session_id: str, agent: str) -> list[tuple[str, Envelope]]:
        """Messages delivered to ``agent`` since its last checkpoint, oldest first, with their files' names."""
        return [(rel.rsplit("/", 1)[1], Envelope.model_validate_json(line))
                for rel in self.storage.files(f"sessions/{session_id}/inbox/{agent}", suffix=".jsonl")
                for line in self.storage.read_bytes(rel).splitlines() if line.strip()]

    def clear_inbox(self, session_id: str, agent: str, names: list[str]) -> None:
        for name in names:
            self.storage.delete(f"sessions/{session_id}/inbox/{agent}/{name}")

    # --- tool results -------------------------------------------------------------------------
    def record_tool(self, session_id: str, key: str, value: Any) -> None:
        """Record a tool's result, its text redacted: a result that holds a secret registered in this
        process (:mod:`troupe.runtime.secrets`) is written with ``[redacted]`` in its place."""
        self.storage.write_bytes(f"sessions/{session_id}/tools/{key}.json",
                                 json.dumps(_redacted(portable(value))).encode())

    def recorded_tool(self, session_id: str, key: str) -> tuple[bool, Any]:
        """``(True, result)`` when this call's result was recorded, else ``(False, None)``."""
        try:
            raw = self.storage.read_bytes(f"sessions/{session_id}/tools/{key}.json")
        except FileNotFoundError:
            return False, None
        return True, revive(json.loads(raw))


def _check_format(found: int, what: str) -> None:
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{what} was checkpointed in format {found}; this Troupe reads format "
                              f"{CHECKPOINT_FORMAT} (resume it with the Troupe version that wrote it)")


# --- results that survive a restart ---------------------------------------------------------
def portable(value: Any) -> Any:
    """``value`` as JSON that :func:`revive` turns back into it: pydantic models keep their type."""
    if isinstance(value, BaseModel):
        cls = type(value)
        return {"__model__": f"{cls.__module__}:{cls.__qualname__}", "data": value.model_dump(mode="json")}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": {str(k): portable(v) for k, v in value.items()}}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _redacted(value: Any) -> Any:
    """A :func:`portable` value with :func:`~troupe.runtime.redact.redact_text` applied to every string in it."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {redact_text(k): _redacted(v) for k, v in value.items()}
    return value


def revive(value: Any) -> Any:
    if isinstance(value, list):
        return [revive(v) for v in value]
    if isinstance(value, dict):
        if "__model__" in value:
            module, _, name = value["__model__"].partition(":")
            cls = getattr(importlib.import_module(module), name)
            return cls.model_validate(value["data"])
        return {k: revive(v) for k, v in value.get("__dict__", value).items()}
    return value


class Saver:
    """Writes one actor's checkpoint, in order, coalescing saves asked for while one is written.

    ``await save()`` returns once a checkpoint taken *after* the call was made is on storage, so a
    caller that changed state and then awaited ``save`` may acknowledge that change. ``before``
    runs first (the host ships the events emitted so far, so the log is never behind a checkpoint).
    """

    def __init__(self, store: CheckpointStore, snapshot: Callable[[int], ActorCheckpoint],
                 before: Callable[[], Any] | None = None, *, seq: int = 0) -> None:
        self._store = store
        self._snapshot = snapshot
        self._before = before
        self._lock = asyncio.Lock()
        self._asked = 0
        self._written = 0
        self.seq = seq
        """The last checkpoint's sequence number (a restored actor goes on from its checkpoint's)."""

    async def save(self) -> None:
        self._asked += 1
        mine = self._asked
        async with self._lock:
            if self._written >= mine:
                return  # a save that started after this call's changes already wrote them
            target = self._asked
            if self._before is not None:
                await self._before()
            self.seq += 1
            checkpoint = self._snapshot(self.seq)
            await asyncio.to_thread(self._store.save_actor, checkpoint)
            self._written = target

    async def settled(self) -> None:
        """Return once every change saved for so far is on storage (without a new save when none
        is due): what a read waits for, so that it never reports a change a crash could undo."""
        target = self._asked
        while self._written < target:
            if not self._lock.locked():
                await self.save()
                return
            async with self._lock:
                pass


__all__ = [
    "CHECKPOINT_DIR",
    "ActorCheckpoint",
    "CheckpointError",
    "CheckpointStore",
    "Saver",
    "SessionManifest",
    "SessionNotFoundError",
    "SessionSummary",
    "checkpoint_location",
    "default_location",
    "portable",
    "revive",
    "store_at",
]
