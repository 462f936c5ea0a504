"""An agent's conversation context, with a token budget and compaction of old turns."""

from __future__ import annotations

from dataclasses import dataclass

from troupe.runtime.ids import USER
from troupe.runtime.llm.types import TOOL_ERROR_PREFIX, ChatMessage, LLMRequest, ToolSchema
from troupe.runtime.messages import Envelope, MessageKind

_CHARS_PER_TOKEN = 4
_EXCERPT = 160
_MIN_CLIP = 400
"""``shrink`` never cuts a message below this many characters."""
STOPPED_RESULT = f"{TOOL_ERROR_PREFIX}the call was stopped: the turn was cancelled"
"""What a call left without a result by a cancelled turn reads as (:meth:`Context.close_calls`)."""


def estimate_tokens(message: ChatMessage) -> int:
    size = len(message.content or "") + sum(len(tc.arguments) + len(tc.name) for tc in message.tool_calls)
    return size // _CHARS_PER_TOKEN + 4


def render_incoming(envelope: Envelope) -> ChatMessage:
    """How a delivered message looks to the model: the user's words as they are; others say who
    sent them, in plain words (small models echo bracketed tags back)."""
    if envelope.sender == USER:
        text = envelope.content
    elif envelope.kind is MessageKind.TASK:
        text = f"New task {envelope.data.get('task_id', '?')} from {envelope.sender}: " + _goal(envelope)
        task_input = envelope.data.get("input")
        if isinstance(task_input, dict) and task_input.get("context"):
            text += f"\n(It is part of this request: {task_input['context']})"
    elif envelope.kind is MessageKind.NOTICE:
        text = f"Notice from {envelope.sender}: {envelope.content}"
    elif envelope.data.get("is_reply"):
        text = f"Reply from {envelope.sender}: {envelope.content}"
    else:
        text = f"Message from {envelope.sender}: {envelope.content}"
    return ChatMessage(role="user", content=text, name=str(envelope.sender))


def _goal(envelope: Envelope) -> str:
    """A task message's goal, without the registry's own "Task <id>: " prefix."""
    prefix = f"Task {envelope.data.get('task_id', '')}: "
    return envelope.content[len(prefix):] if envelope.content.startswith(prefix) else envelope.content


@dataclass(frozen=True)
class Compaction:
    removed_messages: int
    tokens_before: int
    tokens_after: int
    clipped_messages: int = 0
    """Messages cut short (``shrink`` only: folding old turns was not enough)."""
    reason: str = "budget"
    """``budget`` (over ``context_tokens``) or ``context_length`` (the model refused the request)."""


class Context:
    """System prompt plus turns; a turn starts at a user message and never splits a tool round."""

    def __init__(self, *, system: str, budget_tokens: int) -> None:
        self.system = ChatMessage(role="system", content=system)
        self.budget_tokens = budget_tokens
        self.messages: list[ChatMessage] = []

    def add(self, message: ChatMessage) -> None:
        self.messages.append(message)

    def add_incoming(self, envelopes: list[Envelope]) -> None:
        for env in envelopes:
            self.add(render_incoming(env))

    def close_calls(self, result: str = STOPPED_RESULT) -> int:
        """Answer every tool call of the context that has no result yet with ``result`` (a turn cancelled
        while its calls ran: a model refuses a history with unanswered calls); returns how many."""
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        at, added = len(self.messages), 0
        for i in range(len(self.messages) - 1, -1, -1):
            message = self.messages[i]
            if message.role == "assistant" and message.tool_calls:
                missing = [ChatMessage(role="tool", content=result, tool_call_id=c.id, name=c.name)
                           for c in message.tool_calls if c.id not in answered]
                self.messages[at:at] = missing  # after the call's own results, before anything newer
                added += len(missing)
                break  # only the last round can be open: each earlier one got its results before the next
            if message.role != "tool":
                at = i
        return added

    def tokens(self) -> int:
        return estimate_tokens(self.system) + sum(estimate_tokens(m) for m in self.messages)

    def _turn_starts(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if m.role == "user" and not (m.content or "").startswith("[compacted")]

    def compact(self) -> Compaction | None:
        """If over budget, fold the oldest whole turns into one summary message.

        Keeps the newest turns that fit in half the budget (always at least the current turn),
        so a long session keeps working instead of overflowing the model's window.
        """
        before = self.tokens()
        if before <= self.budget_tokens:
            return None
        removed = self._fold(self.budget_tokens // 2)
        if not removed:
            return None
        return Compaction(removed_messages=removed, tokens_before=before, tokens_after=self.tokens())

    def shrink(self) -> Compaction | None:
        """The model refused the request as longer than its window, so the budget (an estimate)
        was too generous: lower it to 3/4 of what was sent, fold old turns as :meth:`compact` does,
        then cut the longest messages (tool results first) until the context fits. ``None`` when
        nothing is left to shrink."""
        before, budget = self.tokens(), self.budget_tokens
        target = max(1, min(budget, before) * 3 // 4)
        removed = self._fold(target // 2)
        clipped = 0
        while self.tokens() > target and self._clip_one():
            clipped += 1
        if not removed and not clipped:
            return None
        self.budget_tokens = target
        return Compaction(removed_messages=removed, tokens_before=before, tokens_after=self.tokens(),
                          clipped_messages=clipped, reason="context_length")

    def _fold(self, keep_tokens: int) -> int:
        """Fold the turns before the newest ones that fit in ``keep_tokens`` (the current turn is
        always kept) into a summary; returns how many messages were folded."""
        starts = self._turn_starts()
        if len(starts) < 2:
            return 0
        keep_from = starts[-1]
        used = sum(estimate_tokens(m) for m in self.messages[keep_from:])
        for s in reversed(starts[:-1]):
            size = sum(estimate_tokens(m) for m in self.messages[s:keep_from])
            if used + size > keep_tokens:
                break
            used += size
            keep_from = s
        old, kept = self.messages[:keep_from], self.messages[keep_from:]
        if not old:
            return 0
        lines = []
        for m in old:
            if m.content:
                text = " ".join(m.content.split())
                lines.append(f"- {m.role}: {text[:_EXCERPT]}{'…' if len(text) > _EXCERPT else ''}")
            for tc in m.tool_calls:
                lines.append(f"- assistant called {tc.name}({tc.arguments[:_EXCERPT]})")
        summary = ChatMessage(
            role="user",
            content=f"[compacted {len(old)} earlier messages]\n" + "\n".join(lines[-40:]),
        )
        self.messages = [summary, *kept]
        return len(old)

    def _clip_one(self) -> bool:
        """Halve the longest message that can be cut (tool results before anything else)."""
        def size(i: int) -> int:
            return len(self.messages[i].content or "")

        cuttable = [i for i in range(len(self.messages)) if size(i) > 2 * _MIN_CLIP]  # each cut saves >= 1/2
        if not cuttable:
            return False
        tool_results = [i for i in cuttable if self.messages[i].role == "tool"]
        i = max(tool_results or cuttable, key=size)
        text = self.messages[i].content or ""
        keep = max(_MIN_CLIP, len(text) // 2)
        note = f"\n[cut to fit the model's context window: {len(text) - keep} characters omitted]"
        self.messages[i] = self.messages[i].model_copy(update={"content": text[:keep] + note})
        return True

    def request(self, tools: list[ToolSchema], *, temperature: float | None = None) -> LLMRequest:
        return LLMRequest(messages=[self.system, *self.messages], tools=tools, temperature=temperature)


__all__ = ["STOPPED_RESULT", "Compaction", "Context", "estimate_tokens", "render_incoming"]
