"""A deterministic model for the memory suite and tests: it does what the user's message says, with the memory
tools, and answers from what the tools (or the memory recalled into its context) gave it.

- ``remember KEY = VALUE``: calls ``remember``; replies ``ok``.
- ``update KEY = VALUE``: calls ``update_memory``; replies ``ok``.
- ``forget KEY``: calls ``forget``; replies ``ok``.
- ``recall QUERY``: calls ``recall``; replies with the best value found (``nothing``).
- ``context QUERY``: no tool: replies with the first recalled line of its context (the ``memory`` message)
  that shares a word with QUERY (``nothing``) - the automatic recall at the start of a turn.
"""

from __future__ import annotations

import json
import re

from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

_WORD = re.compile(r"[^\W_]+")


def _call(name: str, n: int, **arguments: object) -> LLMResponse:
    return LLMResponse(tool_calls=[ToolCall(id=f"call_{name}_{n}", name=name, arguments=json.dumps(arguments))])


def respond(request: LLMRequest, agent: str) -> LLMResponse | str:
    msgs = request.messages
    last = msgs[-1]
    if last.role == "tool":
        text = last.content or ""
        if text.startswith(("[", "nothing")):
            try:
                hits = json.loads(text)
            except ValueError:
                return "nothing"
            return str(hits[0]["value"]) if hits else "nothing"
        return "ok"
    user = next((m for m in reversed(msgs) if m.role == "user" and m.name != "memory"), None)
    said = (user.content or "").strip() if user else ""
    verb, _, rest = said.partition(" ")
    n = len(msgs)
    if verb in ("remember", "update") and "=" in rest:
        key, _, value = rest.partition("=")
        return _call("remember" if verb == "remember" else "update_memory", n, key=key.strip(), value=value.strip())
    if verb == "forget":
        return _call("forget", n, key=rest.strip())
    if verb == "recall":
        return _call("recall", n, query=rest.strip(), k=1)
    if verb == "context":
        words = set(_WORD.findall(rest.lower()))
        memory = next((m.content or "" for m in reversed(msgs) if m.role == "user" and m.name == "memory"), "")
        for line in memory.splitlines()[1:]:
            if words & set(_WORD.findall(line.lower())):
                return line.split(": ", 1)[-1]
        return "nothing"
    return "ok"
