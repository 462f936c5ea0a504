"""Errors of the knowledge (RAG) layer."""

from __future__ import annotations

from troupe.runtime.errors import ConfigError


class KnowledgeBackendError(ConfigError):
    """An embedding model, package or endpoint the knowledge settings need is missing or broken.

    The message is a diagnostic: what is missing and how to fix it (which extra to install, which
    endpoint failed), ending with the BM25-only fallback ``knowledge: {embedder: none}``.
    """


BM25_ONLY_HINT = "or set 'knowledge: {embedder: none}' in the team file for BM25-only retrieval (no model)"

__all__ = ["BM25_ONLY_HINT", "KnowledgeBackendError"]
