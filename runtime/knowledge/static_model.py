"""The embedded default embedder: WordLlama's static token embeddings, shipped inside its PyPI wheel.

``pip install 'troupe-runtime[knowledge]'`` installs ``wordllama`` (pinned), whose wheel carries a
32,000 x 256 float16 token-embedding table (16 MB, ``l2_supercat_256.safetensors``) and its tokenizer
(a ``tokenizers`` JSON). No model hub is involved. Like the local model's weights
(:mod:`troupe.runtime.llm.local.weights`), the package is a third party's: both files are found through
:mod:`importlib.metadata`, their sha256 is checked against the pins below the first time a process
loads them, and nothing of ``wordllama`` itself is imported - only its two data files are read, with
``tokenizers`` and ``safetensors`` (its dependencies).

A text's vector is the mean of its tokens' rows, L2-normalised (what WordLlama does); 256 dimensions,
about 8,000 chunks/s of ~130 tokens on 2 cores. Why this model: docs/knowledge_backends.md.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from troupe.runtime.knowledge.errors import BM25_ONLY_HINT, KnowledgeBackendError

KNOWLEDGE_EXTRA_HINT = "pip install 'troupe-runtime[knowledge]'"
_BATCH = 32
"""Texts pooled at once: the gathered token rows of a batch stay in cache (bigger batches are slower)."""


@dataclass(frozen=True)
class StaticModelSpec:
    """A static-embedding model whose files ship in a PyPI distribution."""

    name: str
    distribution: str
    version: str
    """The pinned version (the extra installs exactly this one)."""
    weights: str
    """Path of the safetensors file inside the distribution."""
    weights_sha256: str
    tokenizer: str
    """Path of the ``tokenizers`` JSON inside the distribution."""
    tokenizer_sha256: str
    dim: int


DEFAULT_MODEL = StaticModelSpec(
    name="wordllama-l2-supercat-256",
    distribution="wordllama",
    version="0.4.0.post1",
    weights="wordllama/weights/l2_supercat_256.safetensors",
    weights_sha256="64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
    tokenizer="wordllama/tokenizers/l2_supercat_tokenizer_config.json",
    tokenizer_sha256="93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
    dim=256,
)


def _missing(spec: StaticModelSpec, what: str) -> KnowledgeBackendError:
    return KnowledgeBackendError(
        f"the default knowledge embedder ({spec.name}) needs {what}; install it with {KNOWLEDGE_EXTRA_HINT} "
        f"(pins {spec.distribution}=={spec.version}), name an embeddings endpoint ('knowledge: {{embedder: "
        f"<model profile>}}'), {BM25_ONLY_HINT}",
        embedder="default", model=spec.name,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate(spec: StaticModelSpec, rel: str, sha256: str) -> Path:
    """The file ``rel`` of ``spec``'s distribution, checked against ``sha256``."""
    try:
        dist = md.distribution(spec.distribution)
    except md.PackageNotFoundError:
        raise _missing(spec, f"the package {spec.distribution!r}, which is not installed") from None
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise _missing(spec, f"{rel} from {spec.distribution} {spec.version}, which the installed "
                             f"{spec.distribution} {dist.version} lacks")
    digest = _sha256(path)
    if digest != sha256:
        raise KnowledgeBackendError(
            f"{path} (from {spec.distribution} {dist.version}) has sha256 {digest}, not the pinned {sha256}: "
            f"reinstall the pinned version ({KNOWLEDGE_EXTRA_HINT}, or pip install --force-reinstall "
            f"'{spec.distribution}=={spec.version}'), {BM25_ONLY_HINT}",
            embedder="default", model=spec.name, path=str(path),
        )
    return path


class StaticEmbedder:
    """Mean of static token embeddings, L2-normalised. Thread-safe for :meth:`embed` (read-only state)."""

    def __init__(self, spec: StaticModelSpec, table: np.ndarray, tokenizer: Any) -> None:
        self.name = spec.name
        self.dim = int(table.shape[1])
        self._table = table
        self._tokenizer = tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), _BATCH):
            batch = [t if t.strip() else "" for t in texts[start:start + _BATCH]]  # blank: a zero row
            encodings = self._tokenizer.encode_batch(batch, add_special_tokens=False)
            lens = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
            total = int(lens.sum())
            if total == 0:
                continue
            ids = np.fromiter((i for e in encodings for i in e.ids), np.int64, total)
            np.clip(ids, 0, self._table.shape[0] - 1, out=ids)
            keep = lens > 0
            offsets = np.concatenate(([0], np.cumsum(lens[keep])[:-1]))
            sums = np.add.reduceat(self._table[ids], offsets, axis=0)
            out[start + np.flatnonzero(keep)] = sums
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


@functools.cache
def load(spec: StaticModelSpec = DEFAULT_MODEL) -> StaticEmbedder:
    """The embedder of ``spec``, its files verified (once per process; later calls share it)."""
    weights = locate(spec, spec.weights, spec.weights_sha256)
    tokenizer_file = locate(spec, spec.tokenizer, spec.tokenizer_sha256)
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as e:
        raise _missing(spec, f"the package {e.name!r}, which is not installed") from None
    tensors = load_file(str(weights))
    if len(tensors) != 1:
        raise KnowledgeBackendError(f"{weights} holds {sorted(tensors)}, expected one embedding table",
                                    embedder="default", model=spec.name)
    table = np.ascontiguousarray(next(iter(tensors.values())), dtype=np.float32)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return StaticEmbedder(spec, table, tokenizer)


__all__ = ["DEFAULT_MODEL", "KNOWLEDGE_EXTRA_HINT", "StaticEmbedder", "StaticModelSpec", "load", "locate"]
