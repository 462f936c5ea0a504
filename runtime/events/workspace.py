"""Payloads of a session's workspace history: a snapshot taken, a rollback made."""

from __future__ import annotations

from typing import ClassVar, Literal

from troupe.runtime.events.payload import Payload


class WorkspaceSnapshotPayload(Payload):
    """A new snapshot of the session's workspace (none is taken when the folder did not change)."""

    event_type: Literal["workspace.snapshot"] = "workspace.snapshot"
    snapshot: str
    """Its id (``<seq>-<tree prefix>``; ``troupe workspace rollback SESSION --to`` takes it)."""
    seq: int
    """Its number in the session's history (1, 2, ...)."""
    reason: str
    """Why it was taken: ``turn 2``, ``session completed``, ``before write_file``, ``before rollback to 3-ab12``."""
    files: int
    """Entries it lists (files, links and empty folders)."""
    bytes_total: int
    """Size of the files it lists."""
    bytes_new: int
    """Content written to storage for it (what no earlier snapshot had)."""
    folder: str
    """The workspace folder it was taken of (on the node that took it)."""


class WorkspaceRollbackPayloadV1(Payload):
    """``workspace.rollback`` before it said where it ran (payload version 1)."""

    to: str
    replaced: str | None = None
    snapshot: str | None = None
    added: int = 0
    removed: int = 0
    changed: int = 0
    by: str = "api"
    folder: str = ""


class WorkspaceRollbackPayload(Payload):
    """The session's workspace was restored to an earlier snapshot (its state before was snapshotted first)."""

    payload_version: ClassVar[int] = 2
    event_type: Literal["workspace.rollback"] = "workspace.rollback"
    to: str
    """The snapshot restored."""
    replaced: str | None = None
    """The snapshot of the state the rollback replaced (``None``: the folder was missing or empty)."""
    snapshot: str | None = None
    """The snapshot recording the state after it."""
    added: int = 0
    """Files the rollback brought back (absent before it)."""
    removed: int = 0
    """Files it removed (not in the snapshot restored)."""
    changed: int = 0
    """Files whose content or mode it restored."""
    by: str = "api"
    """Who asked: ``api`` (Python), ``cli``."""
    folder: str = ""
    """The workspace folder restored."""
    live: bool = False
    """Whether the session was live: the rollback ran in its host's process, on the node holding the
    folder (else in the caller's process, on the caller's machine)."""
    host: str = ""
    """The machine (hostname) the folder was restored on."""
    pid: int = 0
    """The process that restored it (a live session's host actor, or the caller)."""


__all__ = ["WorkspaceRollbackPayload", "WorkspaceRollbackPayloadV1", "WorkspaceSnapshotPayload"]
