"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (a model profile of the team file).

The profile's ``model`` is the embedding model, ``base_url``/``api_key_env``/``timeout_s``/``max_retries``
are used as for chat (the remote-model guard and the API-key check included). Texts go in batches of
:data:`BATCH`; the vectors are L2-normalised here (not every server does it). A failure becomes a
:class:`KnowledgeBackendError` saying which endpoint and model failed and what to check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai

from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError
from troupe.runtime.knowledge.errors import BM25_ONLY_HINT, KnowledgeBackendError
from troupe.runtime.llm.access import check_remote_allowed, endpoint_url, resolve_api_key

BATCH = 128
"""Texts per request (OpenAI accepts up to 2,048 inputs; local servers often far fewer)."""


class EndpointEmbedder:
    """An embedding model behind an OpenAI-compatible endpoint; ``dim`` is learnt from the first answer."""

    def __init__(self, profile_name: str, profile: ModelProfile, *, batch: int = BATCH) -> None:
        self.base_url = endpoint_url(profile)
        try:
            check_remote_allowed(profile_name, self.base_url)
            key = resolve_api_key(profile_name, profile)
        except ConfigError as e:
            raise KnowledgeBackendError(f"knowledge embedder {profile_name!r}: {e.message}",
                                        embedder=profile_name) from None
        self.profile_name = profile_name
        self.model = profile.model
        self.name = f"{profile_name}:{profile.model}"
        self._batch = batch
        self._dim: int | None = None
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=profile.timeout_s,
                                     max_retries=profile.max_retries)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def _request(self, texts: list[str]) -> np.ndarray:
        try:
            resp = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float")
        except openai.APIStatusError as e:
            raise self._error(f"answered HTTP {e.status_code}: {str(e)[:300]}") from None
        except openai.APIConnectionError as e:
            raise self._error(f"cannot be reached ({type(e).__name__}: {str(e)[:200]}); is the server running?") from None
        rows = sorted(resp.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise self._error(f"returned {len(rows)} embeddings for {len(texts)} inputs")
        return np.asarray([r.embedding for r in rows], dtype=np.float32)

    def _error(self, what: str) -> KnowledgeBackendError:
        return KnowledgeBackendError(
            f"knowledge embedder {self.profile_name!r}: {self.base_url}/embeddings (model {self.model!r}) {what}. "
            f"Check that the endpoint serves /v1/embeddings for that model, use 'knowledge: {{embedder: default}}' "
            f"(the embedded model), {BM25_ONLY_HINT}",
            embedder=self.profile_name, base_url=self.base_url, model=self.model,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), self._batch):
            # An empty string is refused by some servers: send a space, the row is normalised anyway.
            chunk = [t if t.strip() else " " for t in texts[start:start + self._batch]]
            parts.append(self._request(chunk))
        if not parts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = np.concatenate(parts)
        if self._dim is None:
            self._dim = int(out.shape[1])
        elif out.shape[1] != self._dim:
            raise self._error(f"returned {out.shape[1]}-dimensional vectors after {self._dim}-dimensional ones")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


__all__ = ["BATCH", "EndpointEmbedder"]
