"""Memory recalled into an agent's context at the start of a turn, within a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from troupe.runtime.memory.model import MemoryEntry

CHARS_PER_TOKEN = 4
HEADER = "Memory (facts you remembered earlier, best match first; newer facts replace older ones):"


def render_recall(entries: Sequence[MemoryEntry], budget_tokens: int) -> tuple[str, list[MemoryEntry], int]:
    """The recall message's text, the entries that fit ``budget_tokens`` (in order), and its tokens."""
    lines: list[str] = []
    kept: list[MemoryEntry] = []
    used = len(HEADER) // CHARS_PER_TOKEN + 1
    for e in entries:
        line = f"- {e.key}: {e.value}"
        cost = len(line) // CHARS_PER_TOKEN + 1
        if used + cost > budget_tokens:
            continue  # a shorter one further down may still fit
        lines.append(line)
        kept.append(e)
        used += cost
    if not kept:
        return "", [], 0
    return HEADER + "\n" + "\n".join(lines), kept, used


def turn_query(texts: Sequence[str], limit: int = 2_000) -> str:
    """What a turn's recall searches for: the text of the messages that started it."""
    return " ".join(t for t in texts if t)[:limit]


__all__ = ["CHARS_PER_TOKEN", "HEADER", "render_recall", "turn_query"]
