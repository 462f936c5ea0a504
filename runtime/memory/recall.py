"""Memory recalled into an agent's context at the start of a turn, within a token budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from troupe.runtime.errors import TroupeError
from troupe.runtime.ids import MEMORY
from troupe.runtime.llm.types import ChatMessage
from troupe.runtime.memory.model import MemoryEntry
from troupe.runtime.messages import Envelope
from troupe.tools.context import SessionServices, TaintView

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


def read_recalled(taint: TaintView | None, agent: str, session_id: str, hits: Iterable[Mapping[str, Any]]) -> None:
    """Risk scoring: ``agent`` reads recalled entries (the service's briefs); one a tainted agent wrote (not
    ``agent`` itself in this session) taints it as untrusted content from ``memory <key> from <writer>``, the
    values the writer's user vouched for staying vouched, as a tainted blackboard entry does."""
    if taint is None:
        return
    for h in hits:
        if h.get("taint") and not (h.get("agent") == str(agent) and h.get("session_id") == str(session_id)):
            taint.read(f"memory {h.get('key')} from {h.get('agent') or '?'}", str(h.get("value", "")))
            for part in h.get("vouched") or ():
                taint.hear(str(part))


async def recall_message(services: SessionServices, agent: str, memory: str, batch: Sequence[Envelope],
                         taint: TaintView | None = None, session_id: str = "") -> ChatMessage | None:
    """The memory message that opens an agent's turn (``None``: no memory, nothing matched, or the service
    could not be reached; the turn goes on without). The service records it as ``memory.recalled``; what a
    tainted agent wrote taints this one (``taint``: the agent's, when risk scoring is on)."""
    if memory == "none":
        return None
    query = turn_query([e.content for e in batch])
    if not query.strip():
        return None
    try:
        found = await services.call(MEMORY, "recall_for_turn", agent=agent, query=query)
    except (TroupeError, OSError):
        return None
    read_recalled(taint, agent, session_id, found.get("tainted") or ())
    return ChatMessage(role="user", content=found["text"], name="memory") if found.get("text") else None


__all__ = ["CHARS_PER_TOKEN", "HEADER", "read_recalled", "recall_message", "render_recall", "turn_query"]
