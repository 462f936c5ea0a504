"""Hybrid retrieval over one namespace: BM25 and vectors, fused by reciprocal rank, optionally reranked.

:class:`NamespaceIndex` is a namespace's indexes loaded into memory (chunk texts, BM25 postings,
vectors); :func:`load_index` keeps the last few per process, keyed by their generation, so a search
after an ingest or a reindex reads the new one. With no embedder (or an index without vectors) the
search is BM25 alone.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from troupe.runtime.knowledge.bm25 import BM25Index
from troupe.runtime.knowledge.embedding import Embedder
from troupe.runtime.knowledge.fusion import rrf
from troupe.runtime.knowledge.ingest import indexed_text
from troupe.runtime.knowledge.rerank import rerank
from troupe.runtime.knowledge.store import KnowledgeStore, Manifest
from troupe.runtime.knowledge.vector_index import VectorIndex

CANDIDATES = 4
"""Each ranking contributes ``CANDIDATES * k`` (at least 20) candidates to the fusion."""


class Hit(BaseModel):
    """One retrieved chunk."""

    namespace: str
    document: str
    chunk_id: str
    score: float
    """Fused (or reranked) score: higher is better; comparable within one search only."""
    heading: str = ""
    text: str


class SearchResult(BaseModel):
    hits: list[Hit]
    mode: Literal["hybrid", "bm25"]
    reranked: bool
    notes: list[str] = []
    ms: float = 0.0


@dataclass
class NamespaceIndex:
    manifest: Manifest
    ids: list[str]
    documents: list[str]
    headings: list[str]
    texts: list[str]
    bm25: BM25Index
    vectors: VectorIndex | None

    @property
    def namespace(self) -> str:
        return self.manifest.namespace

    def rankings(self, query: str, k: int, embedder: Embedder | None) -> tuple[list[list[int]], str]:
        """The BM25 ranking and (with vectors and an embedder) the vector ranking, as chunk rows."""
        depth = max(CANDIDATES * k, 20)
        lexical = [row for row, _ in self.bm25.search(query, depth)]
        if embedder is None or self.vectors is None or not len(self.ids):
            return [lexical], "bm25"
        self.manifest.check_embedder(embedder.name, embedder.dim)
        rows = {cid: i for i, cid in enumerate(self.ids)}
        q = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        semantic = [rows[cid] for cid, _ in self.vectors.search(q, depth) if cid in rows]
        return [lexical, semantic], "hybrid"

    def search(self, query: str, k: int, *, embedder: Embedder | None = None, rerank_hits: bool = False) -> SearchResult:
        started = time.perf_counter()
        rankings, mode = self.rankings(query, k, embedder)
        fused = rrf(rankings, limit=max(CANDIDATES * k, 20) if rerank_hits else k)
        scored = [(row, score) for row, score in fused]
        if rerank_hits:
            order = rerank(query, [(str(row), indexed_text(self.headings[row], self.texts[row]), s) for row, s in scored])
            scored = [(int(r), s) for r, s in order]
        notes = []
        if embedder is not None and self.vectors is None:
            notes.append(f"namespace {self.namespace!r} has no vectors (ingested without an embedder): BM25 only; "
                         f"run 'troupe knowledge reindex {self.namespace}' for hybrid search")
        hits = [Hit(namespace=self.namespace, document=self.documents[r], chunk_id=self.ids[r], score=round(s, 6),
                    heading=self.headings[r], text=self.texts[r]) for r, s in scored[:k]]
        return SearchResult(hits=hits, mode=mode, reranked=rerank_hits, notes=notes,
                            ms=(time.perf_counter() - started) * 1e3)


def read_index(store: KnowledgeStore, manifest: Manifest) -> NamespaceIndex:
    chunks = store.read_chunks(manifest)
    lengths = np.asarray(chunks.column("tokens").to_numpy(zero_copy_only=False), dtype=np.float32)
    return NamespaceIndex(
        manifest=manifest, ids=chunks.column("chunk_id").to_pylist(), documents=chunks.column("document").to_pylist(),
        headings=chunks.column("heading").to_pylist(), texts=chunks.column("text").to_pylist(),
        bm25=store.read_bm25(manifest, lengths), vectors=store.read_vectors(manifest),
    )


_CACHE: OrderedDict[tuple[str, str, int], NamespaceIndex] = OrderedDict()
_LOCK = threading.Lock()
CACHED = 8


def load_index(store: KnowledgeStore, namespace: str) -> NamespaceIndex:
    """The namespace's current indexes (:class:`NamespaceMissingError` when it was never ingested),
    from this process's cache while its generation is current."""
    manifest = store.require(namespace)
    key = (store.storage.location, namespace, manifest.generation)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    index = read_index(store, manifest)
    with _LOCK:
        _CACHE[key] = index
        for stale in [k for k in _CACHE if k[:2] == key[:2] and k != key]:
            del _CACHE[stale]
        while len(_CACHE) > CACHED:
            _CACHE.popitem(last=False)
    return index


def search_many(indexes: Sequence[NamespaceIndex], query: str, k: int, *, embedder: Embedder | None,
                rerank_hits: bool) -> SearchResult:
    """Search several namespaces: each one's ranking, fused by rank (scores are not comparable across them)."""
    if len(indexes) == 1:
        return indexes[0].search(query, k, embedder=embedder, rerank_hits=rerank_hits)
    started = time.perf_counter()
    results = [ix.search(query, k, embedder=embedder, rerank_hits=rerank_hits) for ix in indexes]
    by_id = {(h.namespace, h.chunk_id): h for r in results for h in r.hits}
    fused = rrf([[(h.namespace, h.chunk_id) for h in r.hits] for r in results], limit=k)
    hits = [by_id[key].model_copy(update={"score": round(s, 6)}) for key, s in fused]
    mode = "hybrid" if all(r.mode == "hybrid" for r in results) else "bm25"
    return SearchResult(hits=hits, mode=mode, reranked=rerank_hits, notes=[n for r in results for n in r.notes],
                        ms=(time.perf_counter() - started) * 1e3)


__all__ = ["Hit", "NamespaceIndex", "SearchResult", "load_index", "read_index", "search_many"]
