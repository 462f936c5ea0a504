"""An agent's conversation context, with a token budget and compaction of old turns."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.llm.types import ChatMessage, LLMRequest, ToolSchema
from runtime.ids import USER
from runtime.messages import Envelope, MessageKind

_CHARS_PER_TOKEN = 4
_EXCERPT = 160


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
        starts = self._turn_starts()
        if len(starts) < 2:
            return None
        keep_from = starts[-1]
        budget = self.budget_tokens // 2
        used = sum(estimate_tokens(m) for m in self.messages[keep_from:])
        for s in reversed(starts[:-1]):
            size = sum(estimate_tokens(m) for m in self.messages[s:keep_from])
            if used + size > budget:
                break
            used += size
            keep_from = s
        old, kept = self.messages[:keep_from], self.messages[keep_from:]
        if not old:
            return None
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
        return Compaction(removed_messages=len(old), tokens_before=before, tokens_after=self.tokens())

    def request(self, tools: list[ToolSchema], *, temperature: float | None = None) -> LLMRequest:
        return LLMRequest(messages=[self.system, *self.messages], tools=tools, temperature=temperature)


__all__ = ["Compaction", "Context", "estimate_tokens", "render_incoming"]
