"""Split a document into overlapping chunks, by characters, keeping Markdown sections apart.

A chunk is at most ``size`` characters; consecutive chunks of one section share about ``overlap``
characters, and cuts fall on a paragraph, sentence or word boundary when one is near. In Markdown a
heading starts a new section: no chunk spans two sections, and each chunk carries its heading path
(``"Install > From PyPI"``), which is also indexed, so a query naming the section finds its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SIZE = 1000
DEFAULT_OVERLAP = 150

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One piece of a document: its text, its Markdown heading path, where it starts in the document."""

    text: str
    heading: str
    start: int


def sections(text: str) -> list[tuple[str, int, str]]:
    """``(heading path, start offset, body)`` for each Markdown section (headings inside code fences ignored)."""
    fenced = _fenced_spans(text)
    marks = [m for m in _HEADING.finditer(text) if not any(a <= m.start() < b for a, b in fenced)]
    out: list[tuple[str, int, str]] = []
    path: list[tuple[int, str]] = []
    if not marks or marks[0].start() > 0:
        end = marks[0].start() if marks else len(text)
        out.append(("", 0, text[:end]))
    for i, m in enumerate(marks):
        level, title = len(m.group(1)), m.group(2).strip()
        path = [p for p in path if p[0] < level] + [(level, title)]
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((" > ".join(t for _, t in path), m.start(), text[m.start():end]))
    return out


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    marks = [m.start() for m in _FENCE.finditer(text)]
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def _cut(text: str, start: int, size: int) -> int:
    """Where a chunk starting at ``start`` ends: a boundary in its last third, else ``start + size``."""
    end = start + size
    if end >= len(text):
        return len(text)
    floor = start + (2 * size) // 3
    for sep in _BREAKS:
        at = text.rfind(sep, floor, end)
        if at != -1:
            return at + len(sep)
    return end


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the next chunk starts: ``overlap`` characters back from ``end``, moved forward to a word start."""
    at = max(start + 1, end - overlap)
    if at < end and at > 0 and not text[at - 1].isspace():
        space = text.find(" ", at, end)
        if space != -1:
            at = space + 1
    return at


def split(text: str, *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP, base: int = 0,
          heading: str = "") -> list[TextChunk]:
    """Chunks of one section's ``text`` (offsets relative to ``base``)."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"chunk size must be positive and overlap in [0, size); got size={size}, overlap={overlap}")
    out: list[TextChunk] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, size)
        piece = text[start:end].strip()
        if piece:
            out.append(TextChunk(piece, heading, base + start))
        if end >= len(text):
            break
        start = _next_start(text, start, end, overlap)
    return out


def chunk_text(text: str, *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP,
               markdown: bool = False) -> list[TextChunk]:
    """A document's chunks, in order (Markdown: section by section)."""
    if not markdown:
        return split(text, size=size, overlap=overlap)
    out: list[TextChunk] = []
    for heading, start, body in sections(text):
        out.extend(split(body, size=size, overlap=overlap, base=start, heading=heading))
    return out


__all__ = ["DEFAULT_OVERLAP", "DEFAULT_SIZE", "TextChunk", "chunk_text", "sections", "split"]
