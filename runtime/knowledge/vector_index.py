"""A vector index over unit-length float32 vectors: cosine search, exact below a size, HNSW above.

Up to :data:`EXACT_MAX` vectors a query is one matrix-vector product in numpy (exact, a few ms at
that size). Above it, an HNSW graph from ``faiss-cpu`` (the 'knowledge' extra) answers in well under
a millisecond; the graph is built lazily on the first search after a change, so bulk ingests pay
for it once. Why faiss's HNSW and these parameters (measured against DuckDB's ``array_cosine_similarity``
brute force, usearch and hnswlib): docs/knowledge_backends.md.

In the lake an index is Parquet under its folder: ``vectors.parquet`` (``id`` string, ``vector``
``fixed_size_list<float32>[dim]``), readable with DuckDB (``array_cosine_similarity``) as it is;
the HNSW graph is not stored (rebuilt on load when the index is large: about 4,000 vectors/s on 2 cores).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from troupe.runtime.knowledge.errors import BM25_ONLY_HINT, KnowledgeBackendError
from troupe.runtime.storage.location import Storage

EXACT_MAX = 20_000
"""Most vectors searched exactly; an index larger than this searches an HNSW graph."""
HNSW_M = 32
"""Links per node of the graph (more: better recall, slower build)."""
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 320
"""Candidates kept while searching (raised to ``k`` when ``k`` is larger). On the benchmark's 100,000 chunks
recall@10 is 0.90 at 128, 0.947 at 256, 0.98 at 512 (docs/knowledge_backends.md)."""
FILE = "vectors.parquet"
GRAPH_FILE = "hnsw.faiss"
"""The HNSW graph beside the vectors (faiss's own serialisation), written by :meth:`VectorIndex.save` above ``exact_max``."""


def _hnsw_index(dim: int) -> Any:
    try:
        import faiss
    except ImportError:
        raise KnowledgeBackendError(
            f"a vector index above {EXACT_MAX:,} vectors needs the package 'faiss-cpu', which is not installed; "
            f"install it with pip install 'troupe-runtime[knowledge]', {BM25_ONLY_HINT}"
        ) from None
    index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    return index


class VectorIndex:
    """Ids and their vectors; :meth:`search` returns the ``k`` nearest by cosine similarity.

    Vectors are expected L2-normalised (every :class:`~troupe.runtime.knowledge.embedding.Embedder`'s
    are), so the inner product is the cosine. Safe to search from several threads.
    """

    def __init__(self, dim: int, *, exact_max: int = EXACT_MAX, ef_search: int = HNSW_EF_SEARCH) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, not {dim}")
        self.dim = dim
        self.exact_max = exact_max
        self.ef_search = ef_search
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._graph: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def approximate(self) -> bool:
        """Whether searches go through the HNSW graph (more than ``exact_max`` vectors)."""
        return len(self._ids) > self.exact_max

    def _check(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim or arr.shape[0] != len(ids):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {arr.shape}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be unique")
        return arr

    def build(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Replace the contents with ``ids`` and their ``vectors`` (shape ``(len(ids), dim)``)."""
        arr = self._check(ids, vectors)
        with self._lock:
            self._ids = [str(i) for i in ids]
            self._pos = {i: n for n, i in enumerate(self._ids)}
            self._vectors = arr.copy() if arr is vectors else arr
            self._graph = None

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``ids`` with their ``vectors``; an id already present gets its new vector."""
        arr = self._check(ids, vectors)
        with self._lock:
            fresh = [n for n, i in enumerate(ids) if i not in self._pos]
            changed = len(fresh) < len(ids)
            for n, i in enumerate(ids):
                if i in self._pos:
                    self._vectors[self._pos[i]] = arr[n]
            start = len(self._ids)
            for j, n in enumerate(fresh):
                self._ids.append(str(ids[n]))
                self._pos[str(ids[n])] = start + j
            self._vectors = np.concatenate([self._vectors, arr[fresh]]) if fresh else self._vectors
            if changed:
                self._graph = None  # a moved vector invalidates the graph; appends extend it
            elif self._graph is not None and fresh:
                self._graph.add(arr[fresh])

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids`` (unknown ids are ignored)."""
        with self._lock:
            gone = {self._pos[i] for i in ids if i in self._pos}
            if not gone:
                return
            keep = np.array([n not in gone for n in range(len(self._ids))], dtype=bool)
            self._ids = [i for n, i in enumerate(self._ids) if keep[n]]
            self._pos = {i: n for n, i in enumerate(self._ids)}
            self._vectors = self._vectors[keep]
            self._graph = None

    def _ensure_graph(self) -> Any:
        with self._lock:
            if self._graph is None:
                graph = _hnsw_index(self.dim)
                graph.add(self._vectors)
                self._graph = graph
            return self._graph

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` ids nearest ``query`` (shape ``(dim,)``), best first, with their cosine similarity."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"expected a query of {self.dim} dimensions, got {q.shape[0]}")
        n = len(self._ids)
        k = min(k, n)
        if k <= 0:
            return []
        if not self.approximate:
            return self.search_exact(q, k)
        graph = self._ensure_graph()
        graph.hnsw.efSearch = max(self.ef_search, k)
        scores, rows = graph.search(q[None, :], k)
        ids = self._ids
        return [(ids[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def search_exact(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Brute force over every vector (what :meth:`search` does below ``exact_max``; the benchmark's truth)."""
        scores = self._vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
        k = min(k, len(scores))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[r], float(scores[r])) for r in top]

    def to_arrow(self) -> pa.Table:
        flat = pa.array(self._vectors.reshape(-1), type=pa.float32())
        vectors = pa.FixedSizeListArray.from_arrays(flat, self.dim)
        return pa.table({"id": pa.array(self._ids, type=pa.string()), "vector": vectors})

    def save(self, storage: Storage, path: str) -> None:
        """Write the vectors as Parquet at ``<path>/vectors.parquet`` (``path``: a folder relative to ``storage``),
        and above ``exact_max`` the HNSW graph beside them (``<path>/hnsw.faiss``), built now if it isn't yet: a
        later :meth:`load` reads it instead of rebuilding it on the first search (~36 s at 100k vectors here)."""
        import pyarrow.parquet as pq

        folder = path.strip("/")
        sink = pa.BufferOutputStream()
        pq.write_table(self.to_arrow(), sink, compression="zstd")
        storage.write_bytes(f"{folder}/{FILE}", sink.getvalue().to_pybytes())
        if self.approximate:
            import faiss

            storage.write_bytes(f"{folder}/{GRAPH_FILE}", faiss.serialize_index(self._ensure_graph()).tobytes())

    @classmethod
    def load(cls, storage: Storage, path: str, *, exact_max: int = EXACT_MAX) -> VectorIndex:
        """Read an index written by :meth:`save`."""
        table = storage.read_table(f"{path.strip('/')}/{FILE}")
        col = table.column("vector").combine_chunks()
        dim = col.type.list_size
        index = cls(dim, exact_max=exact_max)
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        index.build(table.column("id").to_pylist(), flat.reshape(len(table), dim))
        graph_file = f"{path.strip('/')}/{GRAPH_FILE}"
        if index.approximate and storage.is_file(graph_file):
            import faiss

            graph = faiss.deserialize_index(np.frombuffer(storage.read_bytes(graph_file), dtype=np.uint8))
            if graph.ntotal == len(index) and graph.d == dim:  # else stale: rebuilt on the first search
                index._graph = graph
        return index


__all__ = ["EXACT_MAX", "FILE", "GRAPH_FILE", "VectorIndex"]
