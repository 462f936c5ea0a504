"""The ``memory`` session service: the memory tools' calls, scoped and isolated, on :class:`MemoryStore` s.

Its methods (reached as ``services.call(MEMORY, "<method>", ...)``; each takes the calling ``agent``)::

    remember(agent, key, value, ttl_s=None, scope=None, note=None) -> dict   # the new entry
    update(agent, key, value, ttl_s=None, scope=None) -> dict                # remember, noted as a correction
    forget(agent, key, scope=None) -> dict                                    # the tombstone
    recall(agent, query, k=5) -> list[dict]                                   # entries with a "score"
    history(agent, key, scope=None) -> list[dict]                             # every version, oldest first
    recall_for_turn(agent, query) -> dict                                     # {"text", "ids"}: the turn's recall

Which namespaces an agent reaches is decided here, from the team file, never from the arguments:
``session`` reaches this session's namespace; ``project`` also the team's ``project``; ``global`` also
``global``. A write goes to the agent's widest scope unless ``scope`` names a narrower one it reaches.
A planner with ``planner.reflect`` reaches its project (it writes lessons there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from troupe.runtime.capabilities import MemoryScope, MemorySettings
from troupe.runtime.config import TeamConfig
from troupe.runtime.errors import ConfigError, TroupeError
from troupe.runtime.events import Payload
from troupe.runtime.events.memory import MemoryForgottenPayload, MemoryRecalledPayload, MemoryWrittenPayload
from troupe.runtime.ids import unique_hex
from troupe.runtime.memory.model import (
    GLOBAL_NAMESPACE,
    SCOPE_ORDER,
    MemoryEntry,
    RecalledEntry,
    expiry,
    memory_reach,
)
from troupe.runtime.memory.recall import render_recall
from troupe.runtime.memory.store import MemoryStore
from troupe.runtime.messages import CURRENT_TURN
from troupe.runtime.storage.location import Storage, open_storage

MAX_KEY = 200
MAX_VALUE = 8_000


class MemoryDenied(TroupeError):
    """A memory call the service refuses (no memory granted, a scope out of reach, an empty key)."""


def memory_root(team: TeamConfig, lake: str | None) -> str:
    """Where a team's memory lives: ``memory.location``, else ``<lake>/memory``."""
    if team.memory.location:
        return team.memory.location
    if lake is None:
        raise ConfigError("memory needs a lake (or memory.location in the team file)")
    return str(open_storage(lake).ref("memory"))


def grants_of(team: TeamConfig) -> dict[str, MemoryScope]:
    """Each agent's reach (a reflecting planner reaches at least its project)."""
    return {str(a.id): memory_reach(a) for a in team.agents}


def uses_memory(team: TeamConfig) -> bool:
    return any(s != "none" for s in grants_of(team).values())


class MemoryService:
    """One session's memory service (in a host, next to the blackboard)."""

    def __init__(self, storage: Storage, *, session_id: str, project: str | None, grants: Mapping[str, MemoryScope],
                 settings: MemorySettings | None = None, emit: Callable[..., None] | None = None) -> None:
        self.storage, self.session_id, self.project = storage, str(session_id), project
        self.grants = dict(grants)
        self.settings = settings or MemorySettings()
        self.emit = emit or (lambda *a, **k: None)
        self._stores: dict[str, MemoryStore] = {}

    @classmethod
    def open(cls, team: TeamConfig, session_id: str, lake: str | None, emit: Callable[..., None]) -> MemoryService:
        return cls(open_storage(memory_root(team, lake)), session_id=session_id, project=team.project,
                   grants=grants_of(team), settings=team.memory, emit=emit)

    # --- scopes -----------------------------------------------------------------------------
    def reach(self, agent: str) -> MemoryScope:
        """An agent's granted scope (a child agent has its root's)."""
        return self.grants.get(str(agent).split(".", 1)[0], "none")

    def namespace(self, scope: str) -> str:
        if scope == "session":
            return self.session_id
        if scope == "project":
            if self.project is None:
                raise MemoryDenied("project memory needs the team's 'project'")
            return self.project
        return GLOBAL_NAMESPACE

    def scopes(self, agent: str) -> list[str]:
        """The scopes ``agent`` reads, narrowest first."""
        granted = SCOPE_ORDER[self.reach(agent)]
        return [s for s in ("session", "project", "global") if SCOPE_ORDER[s] <= granted]

    def _write_scope(self, agent: str, scope: str | None) -> str:
        reach = self.scopes(agent)
        if not reach:
            raise MemoryDenied(f"agent {agent!r} has no memory (memory: none in the team file)", agent=agent)
        if scope is None:
            return reach[-1]
        if scope not in reach:
            raise MemoryDenied(f"agent {agent!r} cannot reach {scope!r} memory (it reaches {', '.join(reach)})",
                               agent=agent)
        return scope

    def store(self, scope: str) -> MemoryStore:
        ns = self.namespace(scope)
        key = f"{scope}/{ns}"
        if key not in self._stores:
            self._stores[key] = MemoryStore(self.storage, scope, ns)
        return self._stores[key]

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # --- writes -----------------------------------------------------------------------------
    async def remember(self, agent: str, key: str, value: str, ttl_s: float | None = None, scope: str | None = None,
                       note: str | None = None, taint: list[str] | None = None,
                       vouched: list[str] | None = None) -> dict[str, Any]:
        """Write ``value`` under ``key`` (superseding the key's current entry); on storage when this returns.
        ``taint``: the untrusted sources a tainted writer had read (risk scoring), kept on the entry so that a
        recall of it taints the reader; ``vouched``: values in it the writer's user wrote (kept only with a taint)."""
        key, value = _check(key, value)
        scope = self._write_scope(agent, scope)
        store = self.store(scope)
        event_id = unique_hex()

        def write() -> MemoryEntry:
            store.refresh()
            prev = store.current(key)
            entry = MemoryEntry(
                scope=scope, namespace=store.namespace, key=key, value=value,
                version=(prev.version + 1) if prev else 1, supersedes=prev.id if prev else None, note=note,
                agent=str(agent), session_id=self.session_id, turn=CURRENT_TURN.get(), event_id=event_id,
                expires_at=expiry(ttl_s if ttl_s is not None else self.settings.ttl_s),
                taint=[str(t) for t in taint or ()][:10], vouched=[str(v) for v in vouched or ()] if taint else [])
            store.append([entry])
            return entry

        entry: MemoryEntry = await self._run(write)
        self._emit(MemoryWrittenPayload(
            entry_id=entry.id, scope=scope, namespace=entry.namespace, key=key, value=value[:2000], version=entry.version,
            supersedes=entry.supersedes, expires_at=entry.expires_at.isoformat() if entry.expires_at else None, note=note),
            agent, event_id)
        return entry.model_dump(mode="json")

    async def update(self, agent: str, key: str, value: str, ttl_s: float | None = None, scope: str | None = None,
                     taint: list[str] | None = None, vouched: list[str] | None = None) -> dict[str, Any]:
        """:meth:`remember`, noted as a correction of the key's earlier value."""
        return await self.remember(agent, key, value, ttl_s=ttl_s, scope=scope, note="update", taint=taint,
                                   vouched=vouched)

    async def forget(self, agent: str, key: str, scope: str | None = None) -> dict[str, Any]:
        """Forget ``key``: a tombstone supersedes its current entry (both stay in its history)."""
        key, _ = _check(key, "")
        scope = self._write_scope(agent, scope)
        store = self.store(scope)
        event_id = unique_hex()

        def write() -> tuple[MemoryEntry, str | None]:
            store.refresh()
            prev = store.current(key)
            live = prev.id if prev is not None and prev.live() else None
            entry = MemoryEntry(scope=scope, namespace=store.namespace, key=key, value="", op="forget",
                                version=(prev.version + 1) if prev else 1, supersedes=prev.id if prev else None,
                                agent=str(agent), session_id=self.session_id, turn=CURRENT_TURN.get(), event_id=event_id)
            store.append([entry])
            return entry, live

        entry, forgotten = await self._run(write)
        self._emit(MemoryForgottenPayload(entry_id=entry.id, scope=scope, namespace=entry.namespace, key=key,
                                          forgotten=forgotten), agent, event_id)
        return {**entry.model_dump(mode="json"), "forgotten": forgotten}

    def _emit(self, payload: Payload, agent: str, event_id: str | None = None) -> None:
        self.emit(payload, agent=str(agent), **({"event_id": event_id} if event_id else {}))

    # --- reads ------------------------------------------------------------------------------
    def search(self, agent: str, query: str, k: int) -> list[RecalledEntry]:
        """The best ``k`` entries for ``query`` across the namespaces ``agent`` reaches (blocking)."""
        now = datetime.now(UTC)
        hits: list[RecalledEntry] = []
        for scope in self.scopes(agent):
            store = self.store(scope)
            store.refresh()
            hits += store.search(query, k, now)
        hits.sort(key=lambda h: (h.score, h.entry.created_at), reverse=True)
        return hits[:k]

    async def recall(self, agent: str, query: str, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` live entries closest to ``query`` (recorded as ``memory.recalled``)."""
        if not self.scopes(agent):
            raise MemoryDenied(f"agent {agent!r} has no memory (memory: none in the team file)", agent=agent)
        hits: list[RecalledEntry] = await self._run(self.search, agent, query, max(1, min(int(k), 50)))
        out = [{**_brief(h.entry), "score": round(h.score, 4)} for h in hits]  # with its taint: the tool applies it
        self._emit(MemoryRecalledPayload(source="tool", query=query[:500], entry_ids=[h.entry.id for h in hits],
                                         tokens=sum(len(str(o)) for o in out) // 4), agent)
        return out

    async def history(self, agent: str, key: str, scope: str | None = None) -> list[dict[str, Any]]:
        scope = self._write_scope(agent, scope)
        store = self.store(scope)
        await self._run(store.refresh)
        return [e.model_dump(mode="json") for e in await self._run(store.history, key)]

    async def recall_for_turn(self, agent: str, query: str) -> dict[str, Any]:
        """What goes into ``agent``'s context at the start of a turn: the best ``recall_k`` entries for the
        turn's messages that fit ``recall_tokens`` (``{"text": "", "ids": []}`` when nothing matches), and
        ``tainted``: those of them a tainted agent wrote (elsewhere than in this agent's session), which the
        agent reads as untrusted content."""
        s = self.settings
        if not self.scopes(agent) or s.recall_tokens <= 0 or not query.strip():
            return {"text": "", "ids": []}
        hits: list[RecalledEntry] = await self._run(self.search, agent, query, s.recall_k)
        if not hits:
            return {"text": "", "ids": []}
        text, kept, tokens = render_recall([h.entry for h in hits], s.recall_tokens)
        tainted = [_brief(e) for e in kept if foreign_taint(e, agent, self.session_id)]
        self._emit(MemoryRecalledPayload(source="turn", query=query[:500], entry_ids=[e.id for e in kept],
                                         tokens=tokens, left_out=len(hits) - len(kept), text=text, tainted=tainted),
                   agent)  # whole: a replay serves the turn's recall from it
        return {"text": text, "ids": [e.id for e in kept], "tainted": tainted}

    # --- checkpoints ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Nothing but the request ids (kept by the checkpoint): every entry is on storage already."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        del state


def _check(key: str, value: str) -> tuple[str, str]:
    key, value = str(key).strip(), str(value)
    if not key or len(key) > MAX_KEY:
        raise MemoryDenied(f"a memory key must be 1-{MAX_KEY} characters")
    if len(value) > MAX_VALUE:
        raise MemoryDenied(f"a memory value is at most {MAX_VALUE} characters (got {len(value)}); keep facts short")
    return key, value


def foreign_taint(e: MemoryEntry, agent: str, session_id: str) -> bool:
    """Whether recalling ``e`` taints ``agent``: a tainted writer's entry, unless the agent wrote it itself in
    this session (its own taint already holds what it read)."""
    return bool(e.taint) and not (e.agent == str(agent) and e.session_id == str(session_id))


def _brief(e: MemoryEntry) -> dict[str, Any]:
    return {"id": e.id, "key": e.key, "value": e.value, "scope": e.scope, "version": e.version, "agent": e.agent,
            "session_id": e.session_id, "created_at": e.created_at.isoformat(),
            **({"taint": e.taint, "vouched": e.vouched} if e.taint else {})}


__all__ = ["MAX_KEY", "MAX_VALUE", "MemoryDenied", "MemoryService", "foreign_taint", "grants_of", "memory_root",
           "uses_memory"]
