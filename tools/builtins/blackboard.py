"""Blackboard tools: shared facts, artifacts and decisions of a session.

Risk scoring: what a tainted agent puts is marked with its untrusted sources (and the values its user
vouched for), and reading a marked entry (``blackboard_get``, ``blackboard_list``) taints the reader, as
untrusted content from ``blackboard <key> from <author>``, so an injected value cannot be laundered
through the blackboard."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from troupe.runtime.ids import BLACKBOARD
from troupe.tools.builtins.tasks import writer_marks
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def read_entries(ctx: ToolContext, entries: Iterable[Any]) -> None:
    """The calling agent reads these entries in a tool result: a value a tainted agent wrote taints it
    (the values that agent's user vouched for stay vouched)."""
    if ctx.taint is None:
        return
    for e in entries:
        if e is not None and getattr(e, "taint", None) and e.author != ctx.agent:
            ctx.taint.read(f"blackboard {e.key} from {e.author}", _text(e.value))
            for part in e.vouched:
                ctx.taint.hear(part)


def _entry(e: Any) -> dict[str, Any] | None:
    return None if e is None else {"key": e.key, "value": e.value, "version": e.version, "author": e.author, "kind": e.kind}


@tool(name="blackboard_put", level="L1")
async def blackboard_put(
    ctx: ToolContext,
    key: str,
    value: Any,
    kind: Literal["fact", "artifact", "decision"] = "fact",
    expected_version: int | None = None,
    ttl_s: float | None = None,
) -> dict[str, Any] | None:
    """Write a value to the shared blackboard.

    Args:
        key: Slash-separated key, e.g. "results/t-mul".
        value: Any JSON value.
        kind: fact, artifact or decision.
        expected_version: Compare-and-set: write only if the key is at this version (0 = must not exist).
        ttl_s: Seconds until the entry expires.
    """
    entry = await ctx.services.call(
        BLACKBOARD, "put", key=key, value=value, author=str(ctx.agent), kind=kind, ttl_s=ttl_s,
        expected_version=expected_version,
        provenance={"message_id": ctx.message_id, "tool_call_id": ctx.tool_call_id}, **writer_marks(ctx, _text(value)),
    )
    return _entry(entry)


@tool(name="blackboard_get", level="L0", idempotent=True)
async def blackboard_get(ctx: ToolContext, key: str) -> dict[str, Any] | str:
    """Read one blackboard entry by key.

    Args:
        key: The exact key.
    """
    entry = await ctx.services.call(BLACKBOARD, "get", key=key)
    read_entries(ctx, [entry])
    return _entry(entry) or f"no entry under key {key!r}"


@tool(name="blackboard_list", level="L0", idempotent=True)
async def blackboard_list(ctx: ToolContext, prefix: str = "") -> list[dict[str, Any] | None]:
    """List blackboard entries whose key starts with a prefix.

    Args:
        prefix: Key prefix, e.g. "results/"; empty lists everything.
    """
    entries = await ctx.services.call(BLACKBOARD, "list", prefix=prefix)
    read_entries(ctx, entries)
    return [_entry(e) for e in entries]


TOOLS = [blackboard_put, blackboard_get, blackboard_list]
