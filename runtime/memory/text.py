"""Tokens and BM25 scores of memory entries (key and value), the same in Python and in SQL."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Final

K1: Final = 1.2
B: Final = 0.75

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS: Final = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the", "their", "them", "there", "these", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "you", "your"])


def tokens(text: str) -> list[str]:
    """Lower-cased words and numbers of ``text``, stop words left out (``user/favourite_color`` -> user, favourite, color)."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def doc_tokens(key: str, value: str) -> list[str]:
    return tokens(key) + tokens(value)


def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25(query: Iterable[str], doc: Counter[str], doc_len: int, *, n_docs: int, avg_len: float,
         df: dict[str, int]) -> float:
    """Okapi BM25 of one document for the query's distinct terms."""
    score = 0.0
    for term in set(query):
        tf = doc.get(term, 0)
        if tf:
            norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * doc_len / max(avg_len, 1e-9)))
            score += idf(n_docs, df.get(term, 0)) * norm
    return score


def bm25_sql(n_docs: int, avg_len: float) -> str:
    """The same score as a SQL expression over columns ``tf``, ``dl`` and ``df`` (one posting's share)."""
    return (f"ln(1 + ({n_docs} - df + 0.5) / (df + 0.5)) * tf * {K1 + 1} "
            f"/ (tf + {K1} * (1 - {B} + {B} * dl / {max(avg_len, 1e-9)}))")


__all__ = ["K1", "STOPWORDS", "B", "bm25", "bm25_sql", "doc_tokens", "idf", "tokens"]
