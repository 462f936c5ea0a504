"""A deterministic model that plays back a script: notebooks, examples and CI run without a key.

Running out of script is loud on purpose: a silent default reply would let a test pass while the
agent did something nobody scripted.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from troupe.runtime.config import ScriptStep
from troupe.runtime.errors import ScriptExhaustedError
from troupe.runtime.llm.types import LLMRequest, LLMResponse, TokenCallback, ToolCall, Usage

_WORDS = re.compile(r"\S+\s*|\s+")
_WORDS_PER_CHUNK = 3


def text_chunks(text: str) -> list[str]:
    """Split ``text`` into a few word-aligned chunks that join back to exactly ``text``.

    Stand-in models stream through ``on_token`` like real ones, so the streaming path of the
    agent loop is exercised by every deterministic test.
    """
    words = _WORDS.findall(text)
    return ["".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)]


async def stream_text(text: str, on_token: TokenCallback | None) -> None:
    """Feed ``text`` to ``on_token`` in small chunks, yielding to the loop between them."""
    if on_token is None or not text:
        return
    for chunk in text_chunks(text):
        on_token(chunk)
        await asyncio.sleep(0)


def estimate_tokens(*texts: str | None) -> int:
    """About four characters a token, at least 1: enough for budgets to bite in tests."""
    return max(1, sum(len(t) for t in texts if t) // 4)


def prompt_texts(request: LLMRequest) -> Iterable[str | None]:
    for m in request.messages:
        yield m.content
        for tc in m.tool_calls:
            yield tc.arguments


def estimate_usage(request: LLMRequest, response: LLMResponse) -> Usage:
    out = [response.text, *(tc.arguments for tc in response.tool_calls)]
    return Usage(tokens_in=estimate_tokens(*prompt_texts(request)), tokens_out=estimate_tokens(*out))


def describe_last_message(request: LLMRequest, limit: int = 200) -> str:
    """``role: content`` of the request's last message, truncated, for error messages."""
    if not request.messages:
        return "(no messages)"
    last = request.messages[-1]
    content = last.content or ""
    if not content and last.tool_calls:
        content = ", ".join(f"{tc.name}({tc.arguments})" for tc in last.tool_calls)
    if len(content) > limit:
        content = content[:limit] + "..."
    return f"{last.role}: {content!r}"


def _id_part(agent: str) -> str:
    return "any" if agent == "*" else re.sub(r"[^A-Za-z0-9_-]", "_", agent)


class ScriptedModel:
    """Returns the script's steps in order, one per ``complete()`` call.

    ``agent`` is the agent id the script belongs to (it goes into tool-call ids and error
    messages); ``name`` is the model profile reported in ``LLMResponse.profile``.
    """

    model_name = "scripted"

    def __init__(self, steps: Sequence[ScriptStep | dict[str, Any]], *, agent: str = "*", name: str = "scripted") -> None:
        self.steps = [s if isinstance(s, ScriptStep) else ScriptStep.model_validate(s) for s in steps]
        self.agent = agent
        self.name = name
        self.calls = 0
        """How many responses have been handed out."""

    @property
    def remaining(self) -> int:
        return len(self.steps) - self.calls

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        turn = self.calls
        if turn >= len(self.steps):
            key = '"*"' if self.agent == "*" else self.agent
            raise ScriptExhaustedError(
                f"scripted model (profile {self.name!r}) for agent {self.agent!r} ran out of script: it has "
                f"{len(self.steps)} step(s) and call {turn + 1} asked for another. The last message was "
                f"{describe_last_message(request)}. Add a step under models.{self.name}.scripts."
                f"{key} in the team file.",
                agent=self.agent,
                profile=self.name,
                steps=len(self.steps),
            )
        self.calls += 1
        step = self.steps[turn]
        prefix = f"call_{_id_part(self.agent)}_{turn}"
        calls = [
            ToolCall(id=f"{prefix}_{i}", name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False))
            for i, c in enumerate(step.tool_calls)
        ]
        await stream_text(step.text, on_token)
        response = LLMResponse(
            text=step.text,
            tool_calls=calls,
            model=self.model_name,
            finish_reason="tool_calls" if calls else "stop",
            profile=self.name,
        )
        response.usage = estimate_usage(request, response)
        return response

    async def aclose(self) -> None:
        return None


__all__ = ["ScriptedModel", "estimate_usage", "stream_text", "text_chunks"]
