"""Memory tools: what an agent whose ``memory`` is not ``none`` remembers across turns and sessions
(docs/memory.md). They reach the session's ``memory`` service, which decides the namespaces from the team
file (the arguments never name one); every write is on storage before the tool returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from troupe.runtime.ids import MEMORY
from troupe.runtime.memory.recall import read_recalled
from troupe.tools.builtins.tasks import writer_marks
from troupe.tools.context import ToolContext
from troupe.tools.registry import granted_only
from troupe.tools.spec import tool

MEMORY_TOOLS = ("remember", "recall", "update_memory", "forget")
granted_only(*MEMORY_TOOLS)  # only by memory: not by tools: ["*"] (the service refuses an agent with memory: none)


@tool(name="remember", level="L1")
async def remember(ctx: ToolContext, key: str, value: str, ttl_s: float | None = None) -> dict[str, Any]:
    """Remember a fact for later turns and sessions. Remembering a key you used before replaces its value.

    Args:
        key: A short, stable name for the fact, e.g. "user/favourite_colour".
        value: The fact, in a sentence.
        ttl_s: Seconds until it is forgotten by itself (leave out to keep it).
    """
    entry = await ctx.services.call(MEMORY, "remember", agent=str(ctx.agent), key=key, value=value, ttl_s=ttl_s,
                                    **writer_marks(ctx, value))  # a tainted agent's fact is marked
    return {"remembered": entry["key"], "version": entry["version"], "scope": entry["scope"],
            **({"replaced": entry["supersedes"]} if entry.get("supersedes") else {})}


@tool(name="recall", level="L0", idempotent=True)
async def recall(ctx: ToolContext, query: str, k: int = 5) -> list[dict[str, Any]] | str:
    """Search what you remembered (this session, and your project's or global memory if you have them).

    Args:
        query: Words to look for, e.g. "favourite colour".
        k: How many facts to return at most.
    """
    hits = await ctx.services.call(MEMORY, "recall", agent=str(ctx.agent), query=query, k=k)
    read_recalled(ctx.taint, str(ctx.agent), str(ctx.session_id), hits)  # a tainted writer's fact taints the reader
    if not hits:
        return f"nothing remembered matches {query!r}"
    return [{"key": h["key"], "value": h["value"], "version": h["version"], "from": h["created_at"]} for h in hits]


@tool(name="update_memory", level="L1")
async def update_memory(ctx: ToolContext, key: str, value: str) -> dict[str, Any]:
    """Correct a fact you remembered: the new value replaces the old one (which stays in its history).

    Args:
        key: The fact's key.
        value: Its new value.
    """
    entry = await ctx.services.call(MEMORY, "update", agent=str(ctx.agent), key=key, value=value,
                                    **writer_marks(ctx, value))
    return {"updated": entry["key"], "version": entry["version"], "replaced": entry.get("supersedes")}


@tool(name="forget", level="L1")
async def forget(ctx: ToolContext, key: str) -> dict[str, Any]:
    """Forget a fact (it is no longer recalled).

    Args:
        key: The fact's key.
    """
    entry = await ctx.services.call(MEMORY, "forget", agent=str(ctx.agent), key=key)
    return {"forgot": entry["key"], "had_value": entry.get("forgotten") is not None}


TOOLS = [remember, recall, update_memory, forget]


def with_memory_tools(names: Sequence[str], memory: str) -> list[str]:
    """An agent's ``tools`` plus the memory tools when its ``memory`` is not ``none``."""
    names = list(names)
    if memory == "none":
        return names
    return names + [t for t in MEMORY_TOOLS if t not in names]


__all__ = ["MEMORY_TOOLS", "TOOLS", "forget", "recall", "remember", "update_memory", "with_memory_tools"]
