"""The memory that opens an agent's turn: recalled from the memory service, or, in a replay, served from the
record (its ``memory.recalled`` event), since the memory may hold other entries by then (docs/replay.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from troupe.runtime.agent.recorded import RecordedRecall, ReplayDivergenceError, ToolReplay
from troupe.runtime.errors import TroupeError
from troupe.runtime.events.memory import MemoryRecalledPayload
from troupe.runtime.ids import MEMORY
from troupe.runtime.llm.types import ChatMessage
from troupe.runtime.memory.recall import read_recalled, recall_message, turn_query
from troupe.runtime.messages import Envelope
from troupe.tools.context import SessionServices, TaintView


async def turn_recall(replay: ToolReplay | None, services: SessionServices, agent: str, memory: str,
                      batch: Sequence[Envelope], taint: TaintView | None, session_id: str,
                      emit: Callable[..., None]) -> ChatMessage | None:
    """The memory message that opens ``agent``'s turn (``None``: none). Live: :func:`recall_message`. In a
    replay, the recorded turn's recall, recorded again as ``memory.recalled`` (a turn past a fork's record
    recalls live); a turn that recalled nothing recalls nothing."""
    if replay is None:
        return await recall_message(services, agent, memory, batch, taint, session_id)
    try:
        recorded = replay.recall()
    except LookupError:
        return await recall_message(services, agent, memory, batch, taint, session_id)
    if recorded is None or memory == "none":
        return None
    if recorded.text is None:
        return await _check_live(recorded, services, agent, batch, taint, session_id)
    read_recalled(taint, agent, session_id, recorded.tainted)
    emit(MemoryRecalledPayload(source="turn", query=recorded.query, entry_ids=recorded.ids, tokens=recorded.tokens,
                               left_out=recorded.left_out, text=recorded.text, tainted=recorded.tainted))
    return ChatMessage(role="user", content=recorded.text, name="memory") if recorded.text else None


async def _check_live(recorded: RecordedRecall, services: SessionServices, agent: str, batch: Sequence[Envelope],
                      taint: TaintView | None, session_id: str) -> ChatMessage | None:
    """A record made before ``memory.recalled`` kept its text (payload v1): recall live, and go on only when the
    memory recalls the recorded entries still."""
    try:
        found: dict[str, Any] = await services.call(MEMORY, "recall_for_turn", agent=agent,
                                                    query=turn_query([e.content for e in batch]))
    except (TroupeError, OSError) as e:
        found = {"ids": [], "error": str(e)}
    if list(found.get("ids") or ()) != recorded.ids:
        raise ReplayDivergenceError(
            f"agent {agent!r}: the memory recalled at the start of this turn is not what the record holds "
            f"(recorded entries {recorded.ids}, now {list(found.get('ids') or ())}"
            f"{'; ' + found['error'] if found.get('error') else ''}): the memory changed since the recording, and "
            f"this record (memory.recalled v1, event {recorded.event_id}) does not keep the recalled text to serve; "
            "record the session again to replay it", agent=agent)
    read_recalled(taint, agent, session_id, found.get("tainted") or ())
    return ChatMessage(role="user", content=found["text"], name="memory") if found.get("text") else None


__all__ = ["turn_recall"]
