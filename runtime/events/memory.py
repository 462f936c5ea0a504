"""Payloads of memory scopes (docs/memory.md): an entry written, a key forgotten, entries recalled.
``agent`` is the agent the memory service acted for; ``turn`` the turn of its call."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class MemoryWrittenPayload(Payload):
    """An entry was remembered (on storage before this event; the entry's ``event_id`` is this event's id)."""

    event_type: Literal["memory.written"] = "memory.written"
    entry_id: str
    """The new entry's id."""
    scope: str
    """``session``, ``project`` or ``global``."""
    namespace: str
    """The session id, the project's name, or ``global``."""
    key: str
    """The key remembered."""
    value: str
    """The value (cut to 2,000 characters)."""
    version: int
    """The key's version (1 for a new key)."""
    supersedes: str | None
    """The entry this one replaces (the key's previous version, kept in its history), if any."""
    expires_at: str | None
    """When it expires (ISO 8601), or null."""
    note: str | None = None
    """Why it was written (``update``: a correction of an earlier fact)."""


class MemoryForgottenPayload(Payload):
    """A key was forgotten: a tombstone entry supersedes its current entry (kept in its history)."""

    event_type: Literal["memory.forgotten"] = "memory.forgotten"
    entry_id: str
    """The tombstone's id."""
    scope: str
    """``session``, ``project`` or ``global``."""
    namespace: str
    """The session id, the project's name, or ``global``."""
    key: str
    """The key forgotten."""
    forgotten: str | None
    """The entry it forgot (null: the key had no live entry)."""


class MemoryRecalledPayloadV1(Payload):
    """``memory.recalled`` before replays served a turn's recall from the record (payload version 1: no ``text``,
    no ``tainted``)."""

    source: Literal["turn", "tool"]
    query: str
    entry_ids: list[str] = Field(default_factory=list)
    tokens: int = 0
    left_out: int = 0


class MemoryRecalledPayload(Payload):
    """Entries were recalled: into the agent's context at the start of a turn (``source`` ``turn``) or by the
    ``recall`` tool (``tool``). A replay serves a turn's recall from this event (``text``, ``tainted``), not from
    the memory as it is by then."""

    payload_version: ClassVar[int] = 2
    event_type: Literal["memory.recalled"] = "memory.recalled"
    source: Literal["turn", "tool"]
    """What recalled them."""
    query: str
    """The query (cut to 500 characters)."""
    entry_ids: list[str] = Field(default_factory=list)
    """The entries recalled, best first."""
    tokens: int = 0
    """Their estimated tokens in the context (``turn``) or result (``tool``)."""
    left_out: int = 0
    """Entries that matched but did not fit ``memory.recall_tokens`` (``turn`` only)."""
    text: str = ""
    """The message it put into the context, whole (``turn`` only; empty: nothing fit): what a replay serves."""
    tainted: list[dict[str, Any]] = Field(default_factory=list)
    """Risk scoring: the recalled entries a tainted agent wrote (``id``, ``key``, ``value``, ``agent``,
    ``session_id``, ``taint``, ``vouched``), which taint the reader (``turn`` only)."""


__all__ = ["MemoryForgottenPayload", "MemoryRecalledPayload", "MemoryRecalledPayloadV1", "MemoryWrittenPayload"]
