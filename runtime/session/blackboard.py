"""The session blackboard: a versioned key/value store agents share instead of re-sending context.

Plain Python (no Ray): a host actor owns one instance per session and drives it from built-in
tools. Every write gets a per-key version so writers can compare-and-set instead of clobbering
each other, entries can expire (TTL measured on the injected :class:`~troupe.runtime.clock.Clock`), and
agents can subscribe to key prefixes to be told about changes without polling.

Values must be JSON: they end up in events, checkpoints and LLM prompts, so a value that cannot
be serialised is rejected at write time rather than failing somewhere far away later.
"""

from __future__ import annotations

import builtins
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.errors import ModelVisibleError, VersionConflictError
from troupe.runtime.events import BlackboardExpiredPayload, BlackboardPutPayload, Emitter, null_emitter
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import MessageKind

Notify = Callable[[AgentId, MessageKind, str, dict[str, Any]], None]
"""How a core asks its host to message an agent: recipient, kind, content text, data."""

MAX_KEY_LENGTH: Final = 256
DEFAULT_HISTORY_LIMIT: Final = 50
EVENT_VALUE_LIMIT: Final = 2048
"""Characters of JSON text of a value copied into a ``blackboard.put`` event (the lake is not a store)."""
SNAPSHOT_FORMAT: Final = 1

_MAX_DEPTH: Final = 64
_WHITESPACE = re.compile(r"\s")


class InvalidKeyError(ModelVisibleError, ValueError):
    """A blackboard key or prefix is malformed; the message says which rule it broke."""


class InvalidValueError(ModelVisibleError, ValueError):
    """A value is not plain JSON (the message names where inside the value the problem is)."""


# --- JSON helpers (shared with troupe.runtime.session.tasks) ------------------------------------------------
def ensure_json(value: Any, *, what: str = "value") -> Any:
    """A deep copy of ``value`` made only of JSON types, or :class:`InvalidValueError`.

    Strict on purpose: dict keys must be strings (``json.dumps`` would silently turn ``1`` into
    ``"1"``), floats must be finite, and sets, bytes, datetimes and objects are refused, so what is
    stored is exactly what a checkpoint restores. Tuples are accepted and become lists.
    """
    return _copy_json(value, what, "$", 0)


def _copy_json(value: Any, what: str, path: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise InvalidValueError(f"{what} is nested more than {_MAX_DEPTH} levels deep at {path}", path=path)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a plain str, even for ids and StrEnum members
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(
                f"{what} at {path} is {value!r}, which JSON cannot represent; use a finite number or null",
                path=path,
            )
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_copy_json(v, what, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidValueError(
                    f"{what} at {path} has a {type(k).__name__} key {k!r}; JSON object keys must be strings",
                    path=path,
                )
            out[k] = _copy_json(v, what, f"{path}.{k}", depth + 1)
        return out
    raise InvalidValueError(
        f"{what} at {path} is a {type(value).__name__}, which is not JSON-serialisable; use strings, "
        "numbers, booleans, null, lists and objects with string keys",
        path=path,
    )


def json_preview(value: Any, limit: int = EVENT_VALUE_LIMIT) -> tuple[Any, bool]:
    """``(value, False)`` if its JSON text fits in ``limit`` characters, else ``(truncated text, True)``.

    Used for event payloads and notification text, which must stay small whatever was stored.
    """
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= limit:
        return value, False
    return text[:limit] + "…", True


# --- model -----------------------------------------------------------------------------------
class Provenance(BaseModel):
    """Where a write came from, so a value can be traced back to the message or tool call behind it."""

    model_config = ConfigDict(frozen=True)

    message_id: str | None = None
    tool_call_id: str | None = None
    event_id: str | None = None


class EntryKind(StrEnum):
    FACT = "fact"
    """Something learned or observed."""
    ARTIFACT = "artifact"
    """A produced piece of work (a draft, a file path, a result table)."""
    DECISION = "decision"
    """A choice the team should stick to."""


class BlackboardEntry(BaseModel):
    """One version of one key. Immutable: a write makes a new entry."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: Any
    version: int = Field(ge=1)
    """1-based, per key, never reused (it keeps counting after an entry expires)."""
    author: AgentId
    provenance: Provenance | None = None
    kind: EntryKind = EntryKind.FACT
    ts: datetime
    ttl_s: float | None = None
    expires_at: datetime | None = None
    taint: list[str] = Field(default_factory=list)
    """Risk scoring: the untrusted sources its author had read when it wrote it (empty: none); a reader
    (the blackboard tools, a subscriber's notice) then reads the value as untrusted content."""
    vouched: list[str] = Field(default_factory=list)
    """Values in it that the tainted author's reference (its user's messages) vouches for: still trusted."""

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class _Slot:
    """Everything kept for one key: its bounded history and its latest version number."""

    __slots__ = ("expiry_reported", "history", "version")

    def __init__(self, limit: int) -> None:
        self.history: deque[BlackboardEntry] = deque(maxlen=limit)
        self.version = 0
        self.expiry_reported = False

    @property
    def latest(self) -> BlackboardEntry | None:
        return self.history[-1] if self.history else None


def validate_key(key: Any) -> str:
    """Return ``key`` if it is a valid blackboard key, else raise :class:`InvalidKeyError`."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"blackboard key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidKeyError("blackboard key must not be empty; use a name like 'plan' or 'research/sources'")
    _check_text(key, "key")
    if any(not seg for seg in key.split("/")):
        raise InvalidKeyError(
            f"invalid blackboard key {key!r}: '/' separates non-empty segments, so the key may not "
            "start or end with '/' or contain '//'"
        )
    return key


def validate_prefix(prefix: Any) -> str:
    """Prefixes are matched with ``str.startswith``: ``''`` matches every key, ``'research/'`` a folder."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"blackboard prefix must be a string, got {type(prefix).__name__}")
    if prefix:
        _check_text(prefix, "prefix")
    return prefix


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"blackboard {what} is {len(text)} characters long; the maximum is {MAX_KEY_LENGTH}"
        )
    if _WHITESPACE.search(text) or not text.isprintable():
        raise InvalidKeyError(
            f"invalid blackboard {what} {text!r}: whitespace and control characters are not allowed; "
            "use '_' or '-' between words and '/' between segments"
        )


# --- the store -------------------------------------------------------------------------------
class Blackboard:
    """A session's shared key/value store with versions, TTLs, history and prefix subscriptions.

    Single-threaded by design: the host actor serialises calls, so no locking is done here.
    """

    def __init__(
        self,
        session_id: SessionId,
        *,
        emit: Emitter = null_emitter,
        notify: Notify | None = None,
        clock: Clock = SYSTEM_CLOCK,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, got {history_limit}")
        self.session_id = SessionId(session_id)
        self._emit = emit
        self._notify = notify
        self._clock = clock
        self._history_limit = history_limit
        self._slots: dict[str, _Slot] = {}
        self._subs: dict[AgentId, set[str]] = {}

    # writes --------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        value: Any,
        *,
        author: AgentId | str,
        kind: EntryKind | str = EntryKind.FACT,
        ttl_s: float | None = None,
        expected_version: int | None = None,
        provenance: Provenance | dict[str, Any] | None = None,
        taint: Iterable[str] | None = None,
        vouched: Iterable[str] | None = None,
    ) -> BlackboardEntry:
        """Write a new version of ``key``.

        With ``expected_version`` the write is a compare-and-set: it only happens if the live
        version is exactly that (``0`` = the key must not exist; an expired entry counts as
        absent), otherwise :class:`VersionConflictError` is raised and nothing changes.
        ``taint``: the untrusted sources the author had read (risk scoring), so readers read the value
        as untrusted content; ``vouched``: values in it the author's user wrote (kept only with a taint).
        """
        key = validate_key(key)
        author = AgentId(author)
        kind = _entry_kind(kind)
        value = ensure_json(value, what=f"value for blackboard key {key!r}")
        if ttl_s is not None and (
            isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not math.isfinite(ttl_s) or ttl_s <= 0
        ):
            raise ValueError(f"ttl_s must be a positive number of seconds or None, got {ttl_s!r}")
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0
        ):
            raise ValueError(
                f"expected_version must be a non-negative integer (0 = the key must not exist), got {expected_version!r}"
            )
        if provenance is not None and not isinstance(provenance, Provenance):
            provenance = Provenance.model_validate(provenance)

        now = self._clock.now()
        slot = self._slots.get(key)
        live = self._live(key, slot, now)
        if expected_version is not None:
            actual = live.version if live is not None else 0
            if expected_version != actual:
                raise VersionConflictError(
                    f"blackboard key {key!r}: expected version {expected_version} but the current "
                    f"version is {actual}{' (the key does not exist or has expired)' if actual == 0 else ''}; "
                    "re-read the key and retry your write against the current version",
                    key=key,
                    expected=expected_version,
                    actual=actual,
                )
        if slot is None:
            slot = self._slots[key] = _Slot(self._history_limit)
        slot.version += 1
        slot.expiry_reported = False
        entry = BlackboardEntry(
            key=key,
            value=value,
            version=slot.version,
            author=author,
            provenance=provenance,
            kind=kind,
            ts=now,
            ttl_s=float(ttl_s) if ttl_s is not None else None,
            expires_at=now + timedelta(seconds=ttl_s) if ttl_s is not None else None,
            taint=[str(t) for t in taint or ()],
            vouched=[str(v) for v in vouched or ()] if taint else [],
        )
        slot.history.append(entry)

        preview, truncated = json_preview(value)
        self._emit(
            BlackboardPutPayload(
                key=key,
                version=entry.version,
                kind=kind.value,
                author=str(author),
                value=preview,
                value_truncated=truncated,
                ttl_s=entry.ttl_s,
                provenance=provenance.model_dump() if provenance is not None else None,
                **({"taint": entry.taint} if entry.taint else {}),
            ),
            agent=str(author),
            status="ok",
        )
        self._notify_subscribers(entry)
        return entry

    # reads ---------------------------------------------------------------------------------
    def get(self, key: str) -> BlackboardEntry | None:
        """The live entry for ``key``; ``None`` if it never existed or has expired."""
        key = validate_key(key)
        return self._live(key, self._slots.get(key), self._clock.now())

    def list(self, prefix: str = "") -> list[BlackboardEntry]:
        """Live entries whose key starts with ``prefix``, sorted by key."""
        prefix = validate_prefix(prefix)
        now = self._clock.now()
        out = []
        for key in sorted(self._slots):
            if key.startswith(prefix):
                entry = self._live(key, self._slots[key], now)
                if entry is not None:
                    out.append(entry)
        return out

    def history(self, key: str) -> builtins.list[BlackboardEntry]:
        """The retained versions of ``key``, oldest first (expired ones included)."""
        key = validate_key(key)
        slot = self._slots.get(key)
        return list(slot.history) if slot is not None else []

    def sweep(self) -> builtins.list[BlackboardEntry]:
        """Report every entry that has expired since the last look (for a host's periodic timer)."""
        now = self._clock.now()
        newly: builtins.list[BlackboardEntry] = []
        for key in sorted(self._slots):
            slot = self._slots[key]
            entry = slot.latest
            if entry is not None and not slot.expiry_reported and entry.is_expired(now):
                self._live(key, slot, now)
                newly.append(entry)
        return newly

    def _live(self, key: str, slot: _Slot | None, now: datetime) -> BlackboardEntry | None:
        """The latest entry if not expired; emits ``blackboard.expired`` the first time it is seen expired."""
        if slot is None or (entry := slot.latest) is None:
            return None
        if not entry.is_expired(now):
            return entry
        if not slot.expiry_reported:
            slot.expiry_reported = True
            self._emit(
                BlackboardExpiredPayload(
                    key=key,
                    version=entry.version,
                    author=str(entry.author),
                    expires_at=entry.expires_at.isoformat() if entry.expires_at else None,
                ),
                status="expired",
            )
        return None

    # subscriptions -------------------------------------------------------------------------
    def subscribe(self, agent: AgentId | str, prefix: str) -> None:
        """Tell ``agent`` (by a NOTICE message) about every write to a key starting with ``prefix``."""
        self._subs.setdefault(AgentId(agent), set()).add(validate_prefix(prefix))

    def unsubscribe(self, agent: AgentId | str, prefix: str | None = None) -> int:
        """Drop one prefix (or, with ``None``, all of them) for ``agent``; returns how many were dropped."""
        agent = AgentId(agent)
        prefixes = self._subs.get(agent)
        if not prefixes:
            return 0
        if prefix is None:
            removed = len(prefixes)
            prefixes.clear()
        else:
            removed = 1 if prefix in prefixes else 0
            prefixes.discard(prefix)
        if not prefixes:
            del self._subs[agent]
        return removed

    def subscriptions(self) -> dict[AgentId, builtins.list[str]]:
        return {a: sorted(p) for a, p in sorted(self._subs.items())}

    def _notify_subscribers(self, entry: BlackboardEntry) -> None:
        if self._notify is None:
            return
        for agent, prefixes in sorted(self._subs.items()):
            if agent == entry.author or not any(entry.key.startswith(p) for p in prefixes):
                continue
            self._notify(
                agent,
                MessageKind.NOTICE,
                f"Blackboard key {entry.key!r} updated to version {entry.version} by {entry.author}.",
                {"blackboard_key": entry.key, "version": entry.version, "author": str(entry.author), **_marks(entry)},
            )

    # checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """All state as a JSON-able dict (entries, version counters, subscriptions)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "session_id": str(self.session_id),
            "keys": {
                key: {
                    "version": slot.version,
                    "expiry_reported": slot.expiry_reported,
                    "history": [e.model_dump(mode="json") for e in slot.history],
                }
                for key, slot in sorted(self._slots.items())
            },
            "subscriptions": {str(a): p for a, p in self.subscriptions().items()},
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        session_id: SessionId,
        *,
        emit: Emitter = null_emitter,
        notify: Notify | None = None,
        clock: Clock = SYSTEM_CLOCK,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> Self:
        """Rebuild from :meth:`snapshot` output; emits nothing (restoring is not writing)."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"unsupported blackboard snapshot format {snapshot.get('format')!r}; expected {SNAPSHOT_FORMAT}"
            )
        board = cls(session_id, emit=emit, notify=notify, clock=clock, history_limit=history_limit)
        for key, data in snapshot["keys"].items():
            slot = board._slots[key] = _Slot(history_limit)
            slot.version = int(data["version"])
            slot.expiry_reported = bool(data["expiry_reported"])
            slot.history.extend(BlackboardEntry.model_validate(e) for e in data["history"])
        for agent, prefixes in snapshot["subscriptions"].items():
            for prefix in prefixes:
                board.subscribe(agent, prefix)
        return board


def _marks(entry: BlackboardEntry) -> dict[str, Any]:
    """What a notice about a tainted entry adds (risk scoring): its author's sources, the vouched values and
    the value itself (a preview), which the subscriber reads as untrusted content."""
    if not entry.taint:
        return {}
    return {"taint": entry.taint, "vouched": entry.vouched, "value": json_preview(entry.value)[0]}


def _entry_kind(kind: EntryKind | str) -> EntryKind:
    try:
        return EntryKind(kind)
    except ValueError:
        raise InvalidValueError(
            f"unknown blackboard entry kind {kind!r}; use one of {', '.join(k.value for k in EntryKind)}"
        ) from None


__all__ = [
    "Blackboard",
    "BlackboardEntry",
    "EntryKind",
    "InvalidKeyError",
    "InvalidValueError",
    "Notify",
    "Provenance",
    "ensure_json",
    "json_preview",
    "validate_key",
    "validate_prefix",
]
