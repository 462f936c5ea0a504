"""A memory entry: one fact about a key, with where it came from and how long it holds.

The overwrite rule: remembering a key that has a current entry writes a new entry one ``version`` up
that ``supersedes`` the old one; both stay in the key's history. Forgetting writes a tombstone (``op``
``forget``) the same way. The *current* entry of a key is its highest version; it is recalled unless it
is a tombstone or has expired.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.capabilities import MemoryScope
from troupe.runtime.config import AgentSpec

StoredScope = Literal["session", "project", "global"]
"""Where an entry lives (``none`` is an agent that remembers nothing)."""

SCOPE_ORDER: Final[dict[str, int]] = {"none": 0, "session": 1, "project": 2, "global": 3}
GLOBAL_NAMESPACE: Final = "global"


def memory_reach(agent: AgentSpec) -> MemoryScope:
    """The widest scope ``agent`` reads and writes: its ``memory``, but at least ``project`` for a planner with
    ``planner.reflect`` (it writes its lessons there, and a later turn of it recalls them)."""
    if agent.kind == "planner" and agent.planner.reflect and SCOPE_ORDER[agent.memory] < SCOPE_ORDER["project"]:
        return "project"
    return agent.memory


def new_entry_id() -> str:
    return f"mem-{uuid.uuid4().hex}"


class MemoryEntry(BaseModel):
    """One version of one key in one namespace (crosses processes; a row of the memory Parquet)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_entry_id)
    scope: StoredScope
    namespace: str
    """The session id (``session``), the team's project (``project``), or ``global``."""
    key: str
    value: str
    op: Literal["remember", "forget"] = "remember"
    version: int = 1
    supersedes: str | None = None
    """The entry this one replaces (the key's previous version), if any."""
    note: str | None = None
    """Why it was written (``update_memory`` records that it corrects an earlier fact)."""
    agent: str = ""
    session_id: str = ""
    turn: int | None = None
    event_id: str | None = None
    """Provenance: the ``memory.written``/``memory.forgotten`` event that records the write."""
    taint: list[str] = Field(default_factory=list)
    """Risk scoring: the untrusted sources its writer had read (a tainted agent's fact): recalling it taints the
    reader, as reading a tainted blackboard entry does."""
    vouched: list[str] = Field(default_factory=list)
    """Values in it that the tainted writer's user vouched for (still trusted)."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))

    def live(self, now: datetime | None = None) -> bool:
        return self.op == "remember" and not self.expired(now)


class RecalledEntry(BaseModel):
    """An entry found by a recall, with its score (BM25 over key and value; higher is closer)."""

    entry: MemoryEntry
    score: float


def expiry(ttl_s: float | None, now: datetime | None = None) -> datetime | None:
    return None if ttl_s is None else (now or datetime.now(UTC)) + timedelta(seconds=ttl_s)


TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA: Final = pa.schema([
    ("id", pa.string()), ("scope", pa.string()), ("namespace", pa.string()), ("key", pa.string()),
    ("value", pa.string()), ("op", pa.string()), ("version", pa.int64()), ("supersedes", pa.string()),
    ("note", pa.string()), ("agent", pa.string()), ("session_id", pa.string()), ("turn", pa.int64()),
    ("event_id", pa.string()), ("created_at", TS), ("expires_at", TS),
    ("taint", pa.list_(pa.string())), ("vouched", pa.list_(pa.string())),
])
"""The entries' Parquet schema (one row per :class:`MemoryEntry`)."""


def to_table(entries: list[MemoryEntry]) -> pa.Table:
    cols = {name: [getattr(e, name) for e in entries] for name in ARROW_SCHEMA.names}
    return pa.table(cols, schema=ARROW_SCHEMA)


_LISTS: Final = ("taint", "vouched")  # absent (null) in files written before they existed


def from_rows(rows: list[dict[str, Any]]) -> list[MemoryEntry]:
    return [MemoryEntry.model_validate({k: v for k, v in r.items() if v is not None or k not in _LISTS}) for r in rows]


def scope_allows(granted: MemoryScope, wanted: str) -> bool:
    """Whether an agent granted ``granted`` reaches entries of scope ``wanted`` (session < project < global)."""
    return SCOPE_ORDER[wanted] >= 1 and SCOPE_ORDER[wanted] <= SCOPE_ORDER[granted]


__all__ = [
    "ARROW_SCHEMA",
    "GLOBAL_NAMESPACE",
    "SCOPE_ORDER",
    "MemoryEntry",
    "RecalledEntry",
    "StoredScope",
    "expiry",
    "from_rows",
    "memory_reach",
    "new_entry_id",
    "scope_allows",
    "to_table",
]
