"""BM25 (Okapi, the Lucene variant of idf) over a namespace's chunks, in numpy, stored as Parquet.

The index is a CSR matrix in three arrays: ``terms`` (sorted), ``offsets`` into ``docs``/``tfs`` (the
chunks holding each term and how often), plus each chunk's length. A query adds up, per query term,
the contribution of every chunk in its posting list (``np.add.at`` into one score per chunk) and
takes the top ``k``. Needs no model: with ``embedder: none`` this is the whole retrieval.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

K1 = 1.2
B = 0.75

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with", "what", "which", "who", "how", "when", "where", "why", "do", "does", "did", "can", "i", "you", "we", "they", "he", "she"]
)


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters and digits), stopwords dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25Index:
    """Sparse term statistics over ``n`` chunks (chunk ``i`` is row ``i`` of the namespace's chunk table)."""

    def __init__(self, terms: np.ndarray, offsets: np.ndarray, docs: np.ndarray, tfs: np.ndarray,
                 lengths: np.ndarray) -> None:
        self.terms = terms
        self.offsets = offsets
        self.docs = docs
        self.tfs = tfs
        self.lengths = lengths.astype(np.float32)
        self._lookup = {str(t): i for i, t in enumerate(terms.tolist())}
        n = len(lengths)
        df = np.diff(offsets).astype(np.float64)
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.avg_len = float(self.lengths.mean()) if n else 0.0

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, texts: Sequence[str]) -> BM25Index:
        counts = [Counter(tokenize(t)) for t in texts]
        vocab = sorted({w for c in counts for w in c})
        ids = {w: i for i, w in enumerate(vocab)}
        rows = [(ids[w], d, tf) for d, c in enumerate(counts) for w, tf in c.items()]
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
        offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(offsets, arr[:, 0] + 1, 1)
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
        return cls(np.array(vocab, dtype=object), np.cumsum(offsets), arr[:, 1].astype(np.int32),
                   arr[:, 2].astype(np.int32), lengths)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every chunk for ``query`` (zero where no query term occurs)."""
        out = np.zeros(len(self.lengths), dtype=np.float32)
        norm = K1 * (1.0 - B + B * self.lengths / (self.avg_len or 1.0))
        for term in set(tokenize(query)):
            t = self._lookup.get(term)
            if t is None:
                continue
            lo, hi = self.offsets[t], self.offsets[t + 1]
            docs, tfs = self.docs[lo:hi], self.tfs[lo:hi].astype(np.float32)
            out[docs] += self.idf[t] * tfs * (K1 + 1.0) / (tfs + norm[docs])
        return out

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best chunks with a positive score, best first, as ``(row, score)``."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = hits[np.argsort(-scores[hits], kind="stable")]
        return [(int(i), float(scores[i])) for i in order]

    # --- Parquet ------------------------------------------------------------------------------
    def postings_table(self) -> pa.Table:
        """One row per term: the term, and the chunks (rows) holding it with their term frequencies."""
        offsets = pa.array(self.offsets.astype(np.int32))
        return pa.table({
            "term": pa.array(self.terms.tolist(), pa.string()),
            "docs": pa.ListArray.from_arrays(offsets, pa.array(self.docs, pa.int32())),
            "tfs": pa.ListArray.from_arrays(offsets, pa.array(self.tfs, pa.int32())),
        })

    @classmethod
    def from_tables(cls, postings: pa.Table, lengths: np.ndarray) -> BM25Index:
        docs_col = postings.column("docs").combine_chunks()
        tfs_col = postings.column("tfs").combine_chunks()
        offsets = docs_col.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        return cls(np.array(postings.column("term").to_pylist(), dtype=object), offsets,
                   docs_col.flatten().to_numpy().astype(np.int32), tfs_col.flatten().to_numpy().astype(np.int32),
                   lengths)


__all__ = ["STOPWORDS", "BM25Index", "tokenize"]
