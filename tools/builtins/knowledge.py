"""``knowledge_search``: retrieval over the knowledge namespaces the team file grants the agent.

An agent lists the namespaces it may read under ``knowledge:``, which gives it ``knowledge_search``
(:func:`with_knowledge_tools`; no need to list it under ``tools:``). Asking for another namespace is refused like a guardrail denial (``guardrail.denied``,
reason ``knowledge_namespace``); each search is recorded as ``knowledge.searched``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from troupe.runtime.errors import PermissionDeniedError, ToolUnavailableError
from troupe.runtime.events import GuardrailDeniedPayload
from troupe.runtime.events.knowledge import KnowledgeHitRecord, KnowledgeSearchedPayload
from troupe.runtime.knowledge.errors import KnowledgeBackendError
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool

TOOL = "knowledge_search"


def _refuse(ctx: ToolContext, message: str) -> PermissionDeniedError:
    ctx.emit(GuardrailDeniedPayload(id=ctx.tool_call_id, reason="knowledge_namespace", error=message),
             tool=TOOL, status="denied")
    return PermissionDeniedError(message, reason="knowledge_namespace")


@tool(name=TOOL, level="L0", idempotent=True)
async def knowledge_search(ctx: ToolContext, query: str, namespace: str | None = None,
                           k: int | None = None) -> dict[str, Any]:
    """Search the team's knowledge base: the chunks of ingested documents that best match a query.

    Args:
        query: What to look for, in words (a question or key terms).
        namespace: Which knowledge namespace to search; omit to search every namespace you may read.
        k: How many chunks to return (default: the team's knowledge top_k).
    """
    granted = list(ctx.spec.knowledge)
    if namespace is not None and namespace not in granted:
        raise _refuse(ctx, f"knowledge namespace {namespace!r} is not granted to agent {ctx.agent!r}; "
                           f"it may search: {', '.join(granted) or 'none'}")
    if not granted:
        raise _refuse(ctx, f"agent {ctx.agent!r} is granted no knowledge namespace (add 'knowledge: [NAME]' "
                           "to it in the team file)")
    if ctx.knowledge is None:
        raise ToolUnavailableError("knowledge search is not set up for this session: the runtime has no lake "
                                   "and the team's knowledge has no location", tool=TOOL)
    if k is not None and not 1 <= k <= 100:
        k = max(1, min(100, k))
    names = [namespace] if namespace is not None else granted
    started = time.perf_counter()
    try:
        result = await asyncio.to_thread(ctx.knowledge.search, names, query, k)  # file reads, numpy
    except KnowledgeBackendError as e:
        raise ToolUnavailableError(e.message, tool=TOOL) from e
    ctx.emit(KnowledgeSearchedPayload(
        id=ctx.tool_call_id, query=query[:500], namespaces=names, k=k or ctx.knowledge.settings.top_k,
        mode=result.mode, reranked=result.reranked,
        hits=[KnowledgeHitRecord(namespace=h.namespace, document=h.document, chunk_id=h.chunk_id, score=h.score)
              for h in result.hits]), tool=TOOL, duration_ms=(time.perf_counter() - started) * 1e3)
    out: dict[str, Any] = {"results": [h.model_dump(exclude_defaults=False) for h in result.hits]}
    if result.notes:
        out["notes"] = result.notes
    return out


TOOLS = [knowledge_search]


def with_knowledge_tools(names: Sequence[str], knowledge: Sequence[str]) -> list[str]:
    """An agent's ``tools`` plus ``knowledge_search`` when it is granted a knowledge namespace."""
    names = list(names)
    return [*names, TOOL] if knowledge and TOOL not in names else names


__all__ = ["TOOL", "TOOLS", "knowledge_search", "with_knowledge_tools"]
