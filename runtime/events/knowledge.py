"""Payloads of knowledge retrieval: an agent searched its namespaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from troupe.runtime.events.payload import Payload


class KnowledgeHitRecord(BaseModel):
    """One chunk a search returned (its text is in the tool result, not here)."""

    namespace: str
    document: str
    chunk_id: str
    score: float


class KnowledgeSearchedPayload(Payload):
    """An agent's ``knowledge_search`` ran (``tool`` is ``knowledge_search``; ``duration_ms`` is the search)."""

    event_type: Literal["knowledge.searched"] = "knowledge.searched"
    id: str
    """The tool call id."""
    query: str
    """What was searched for (cut to 500 characters)."""
    namespaces: list[str]
    """The namespaces searched (all granted to the agent)."""
    k: int
    """How many chunks were asked for."""
    mode: str
    """``hybrid`` (BM25 and vectors, fused by reciprocal rank) or ``bm25`` (no embedder, or no vectors)."""
    reranked: bool
    """Whether the fused candidates were reranked (``knowledge: {rerank: true}``)."""
    hits: list[KnowledgeHitRecord]
    """The chunks returned, best first."""


__all__ = ["KnowledgeHitRecord", "KnowledgeSearchedPayload"]
