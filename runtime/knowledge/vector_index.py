"""A vector index over unit-length float32 vectors: cosine search, exact below a size, approximate above.

Kept in the lake as Parquet (``ids`` and ``vector`` columns) through :class:`~troupe.runtime.storage.location.Storage`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from troupe.runtime.storage.location import Storage


class VectorIndex:
    """Ids and their vectors; :meth:`search` returns the ``k`` nearest by cosine similarity."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __len__(self) -> int:
        raise NotImplementedError

    def build(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Replace the contents with ``ids`` and their ``vectors`` (shape ``(len(ids), dim)``)."""
        raise NotImplementedError

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add (or replace, for an id already present) ``ids`` with their ``vectors``."""
        raise NotImplementedError

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids`` (unknown ids are ignored)."""
        raise NotImplementedError

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` ids nearest ``query`` (shape ``(dim,)``), best first, with their cosine similarity."""
        raise NotImplementedError

    def save(self, storage: Storage, path: str) -> None:
        """Write the vectors as Parquet under ``path`` (a folder relative to ``storage``)."""
        raise NotImplementedError

    @classmethod
    def load(cls, storage: Storage, path: str) -> VectorIndex:
        """Read an index written by :meth:`save`."""
        raise NotImplementedError


__all__ = ["VectorIndex"]
