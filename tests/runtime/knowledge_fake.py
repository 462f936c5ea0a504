"""A tiny deterministic embedder for the knowledge tests: hashed bag of words (and synonyms), unit length."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

SYNONYMS = {"car": "automobile", "automobile": "automobile", "cars": "automobile", "vehicle": "automobile",
            "puppy": "dog", "dogs": "dog", "canine": "dog"}


class FakeEmbedder:
    """Words (mapped through :data:`SYNONYMS`) hashed into ``dim`` buckets: texts sharing meaning share buckets."""

    def __init__(self, name: str = "fake-hash", dim: int = 64) -> None:
        self.name = name
        self.dim = dim
        self.calls = 0

    def _bucket(self, word: str) -> int:
        return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % self.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                out[i, self._bucket(SYNONYMS.get(w, w))] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
