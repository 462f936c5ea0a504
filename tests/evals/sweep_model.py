"""A deterministic model for sweep tests: answers from the input, slowly when asked, crashes when asked."""

from __future__ import annotations

import asyncio

from troupe.runtime.llm.types import LLMRequest


async def reply(request: LLMRequest, agent: str) -> str:
    text = next(m.content for m in request.messages if m.role == "user") or ""
    if "crash" in text:
        raise RuntimeError("the model crashed on purpose")
    if "slow" in text:
        await asyncio.sleep(0.3)
    system = request.messages[0].content or ""
    style = "LOUD " if "Shout." in system else ""
    return f"{style}answer to {text.split('<<')[0].strip()}"
