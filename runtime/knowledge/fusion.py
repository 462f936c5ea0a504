"""Reciprocal-rank fusion: merge rankings that score on different scales (BM25, cosine) by rank alone."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

RRF_K = 60
"""The usual constant (Cormack et al., 2009): damps the weight of the very first ranks."""

T = TypeVar("T", bound=Hashable)


def rrf(rankings: Sequence[Sequence[T]], *, k: int = RRF_K, limit: int | None = None) -> list[tuple[T, float]]:
    """Items of every ranking (each best first) by ``sum(1 / (k + rank))``, best first; ties keep first-seen order."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    fused = sorted(scores.items(), key=lambda kv: -kv[1])
    return fused[:limit] if limit is not None else fused


__all__ = ["RRF_K", "rrf"]
