"""Taint: which untrusted sources an agent has read, and what they said, so that an argument of a
later tool call can be traced back to them.

An agent is *tainted* once it has read a tool result from a source the team marks untrusted
(``risk.untrusted``), or a message from an agent that was tainted itself. The text it read is kept
(bounded: the newest :data:`MAX_TEXT_CHARS` characters, plus up to :data:`MAX_IDENTIFIERS` emails,
URLs, IBANs and long numbers from everything it ever read), and so is the agent's *reference*: the
user's messages it received, and requests from agents that were not tainted. An argument traces to
untrusted content when it appears there and not in the reference (the user vouches for what the user
wrote). Kept in the agent's checkpoint (:meth:`Taint.dump` / :meth:`Taint.load`), so it lasts across
turns and survives a resume.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_TEXT_CHARS = 200_000
"""Untrusted text kept per agent (the oldest reads go first)."""
MAX_READ_CHARS = 50_000
"""Characters kept of one read (a huge page keeps its head)."""
MAX_IDENTIFIERS = 5_000
"""Identifiers (emails, URLs, IBANs, long numbers) kept from every read, even evicted ones."""
MAX_REFERENCE_CHARS = 100_000
"""The user's messages (and trusted requests) kept as the reference."""
MAX_SOURCES = 50
MAX_VOUCHED = 50
"""Vouched values passed on with one task (:meth:`Taint.vouched_parts`)."""
MIN_TRACE_CHARS = 6
"""Shorter argument values are never traced (too common to mean anything)."""
MIN_WORDS_CHARS = 12
"""A value of letters and spaces only is traced from this length (``please`` is not evidence)."""

_EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}", re.I)
_URL = re.compile(r"(?:https?|ftp)://[^\s\"'<>()\[\]{}]+", re.I)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(r"\+\d[\d ().-]{6,}\d")
_DIGITS = re.compile(r"\d{8,}")
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s().-]+")
_NUMERIC = re.compile(r"^[\d\s.,+%$€£-]+$")
_WORDS = re.compile(r"^[^\W\d_]+(?:[\s,'-]+[^\W\d_]+)*[.!?]?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T][\d:.+-]*Z?)?$")


def normal(text: str) -> str:
    """Lower case, runs of white space as one space: how texts are compared."""
    return _SPACES.sub(" ", text.lower()).strip()


def compact(text: str) -> str:
    """Lower case without spaces, dashes, dots and brackets: ``DE89 3704 0044`` = ``de8937040044``."""
    return _SEPARATORS.sub("", text.lower())


def identifiers(text: str) -> set[str]:
    """Emails, URLs, IBANs, international phone numbers (``+49 ...``) and numbers of 8+ digits in ``text``, normalised
    (lower case; IBANs and phone numbers compacted)."""
    found = {m.group(0).lower() for m in _EMAIL.finditer(text)}
    found |= {m.group(0).rstrip(".,;:!?").lower() for m in _URL.finditer(text)}
    found |= {compact(m.group(0)) for m in _IBAN.finditer(text.upper())}
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) >= 8:
            found.add(digits)
    found |= {m.group(0) for m in _DIGITS.finditer(text)}
    return found


def traceable(value: str) -> bool:
    """Whether a value is distinctive enough to trace: 6+ characters with a digit or a symbol
    (``x@y.z``, ``/etc/passwd``, ``ab12cd``), not a date, a plain number only with 8+ digits (an
    account number, not an amount), and words only from :data:`MIN_WORDS_CHARS` characters (a
    phrase, not a common word)."""
    v = value.strip()
    if len(v) < MIN_TRACE_CHARS or _DATE.match(v):
        return False
    if _NUMERIC.match(v):
        return sum(c.isdigit() for c in v) >= 8
    if _WORDS.match(v):
        return len(v) >= MIN_WORDS_CHARS
    return True


def _bounded_in(needle: str, haystack: str) -> bool:
    """``needle`` occurs in ``haystack`` and is not part of a longer word there."""
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (needle[0].isalnum() and before.isalnum()) and not (needle[-1].isalnum() and after.isalnum()):
            return True
        start = haystack.find(needle, start + 1)
    return False


@dataclass(frozen=True)
class _Read:
    source: str
    text: str
    """Normalised (:func:`normal`)."""
    packed: str
    """Compacted (:func:`compact`)."""


class Taint:
    """One agent's taint and reference texts (plain Python; see the module docstring)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        """Untrusted sources read, in the order first read (tool names, ``message from <agent>``)."""
        self._reads: deque[_Read] = deque()
        self._chars = 0
        self._digests: set[str] = set()
        self._ids: dict[str, str] = {}
        """Identifier -> the source it was first read from."""
        self._reference: deque[tuple[str, str]] = deque()
        """(normalised, compacted) texts."""
        self._reference_chars = 0

    @property
    def tainted(self) -> bool:
        return bool(self.sources)

    # --- recording ----------------------------------------------------------------------
    def read(self, source: str, text: str) -> None:
        """The agent read ``text`` from an untrusted ``source``."""
        if source not in self.sources and len(self.sources) < MAX_SOURCES:
            self.sources.append(source)
        text = text[:MAX_READ_CHARS]
        digest = hashlib.blake2b(f"{source}\0{text}".encode(), digest_size=16).hexdigest()
        if not text.strip() or digest in self._digests:
            return
        self._digests.add(digest)
        for ident in identifiers(text):
            if len(self._ids) >= MAX_IDENTIFIERS:
                break
            self._ids.setdefault(ident, source)
        self._reads.append(_Read(source, normal(text), compact(text)))
        self._chars += len(text)
        while self._chars > MAX_TEXT_CHARS and len(self._reads) > 1:
            self._chars -= len(self._reads.popleft().text)

    def hear(self, text: str) -> None:
        """The agent received ``text`` from the user (or a request from an agent that is not tainted)."""
        text = normal(text)
        if not text or any(text == r for r, _ in self._reference):
            return
        self._reference.append((text, compact(text)))
        self._reference_chars += len(text)
        while self._reference_chars > MAX_REFERENCE_CHARS and len(self._reference) > 1:
            self._reference_chars -= len(self._reference.popleft()[0])

    # --- questions ----------------------------------------------------------------------
    def vouched(self, value: str) -> bool:
        """``value`` appears in the reference (the user's messages, trusted requests)."""
        v, p = normal(value), compact(value)
        return any((v and _bounded_in(v, r)) or (len(p) >= MIN_TRACE_CHARS and p in packed) for r, packed in self._reference)

    def vouched_parts(self, text: str, limit: int = MAX_VOUCHED) -> list[str]:
        """The distinctive values in ``text`` (identifiers, :func:`traceable` words) that this agent's
        reference vouches for: what a tainted agent passes on with a task it writes, so that its
        receiver may still use the values the user wrote (the rest of the task is untrusted there)."""
        words = {w.strip(".,;:!?()[]{}<>\"'") for w in text.split()}
        found = sorted(identifiers(text) | {w for w in words if traceable(w)})
        return [part for part in found if self.vouched(part)][:limit]

    def source_of(self, value: str) -> str | None:
        """The untrusted source ``value`` appears in (newest first), or ``None``; values that are not
        :func:`traceable` never trace."""
        if not self.sources or not traceable(value):
            return None
        v, p = normal(value), compact(value)
        hit = self._ids.get(v) or self._ids.get(p)
        if hit is not None:
            return hit
        spaced = len(p) >= 8 and p.isalnum() and any(c.isdigit() for c in p)  # an IBAN or number, maybe spaced
        for read in reversed(self._reads):
            if _bounded_in(v, read.text) or (spaced and p in read.packed):
                return read.source
        return None

    def trace(self, value: str) -> tuple[str, str] | None:
        """The first part of ``value`` that traces to untrusted content and is not vouched for by the
        reference, with its source: the whole value, else an identifier in it."""
        for part in (value, *sorted(identifiers(value))):
            source = self.source_of(part)
            if source is not None and not self.vouched(part):
                return part, source
        return None

    # --- checkpoints --------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "reads": [[r.source, r.text] for r in self._reads],
                "ids": dict(self._ids), "reference": [r for r, _ in self._reference]}

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> Taint:
        taint = cls()
        if not data:
            return taint
        taint.sources = [str(s) for s in data.get("sources", ())]
        for source, text in data.get("reads", ()):
            taint._reads.append(_Read(source, text, compact(text)))
            taint._chars += len(text)
        taint._ids = {str(k): str(v) for k, v in dict(data.get("ids", {})).items()}
        for text in data.get("reference", ()):
            taint.hear(text)
        return taint


__all__ = ["Taint", "compact", "identifiers", "normal", "traceable"]
