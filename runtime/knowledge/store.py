"""A namespace's indexes in the lake: chunks, BM25 postings and vectors as Parquet, and a manifest.

Layout under the knowledge root (``<lake>/knowledge/`` or ``KnowledgeSettings.location``, any pyarrow.fs
location)::

    <namespace>/manifest.json                 which generation is current; embedder name and dim; documents
    <namespace>/gen-000003/chunks/*.parquet   chunk_id, document, ordinal, heading, text, start, tokens
    <namespace>/gen-000003/bm25/*.parquet     one row per term: term, docs (chunk rows), tfs
    <namespace>/gen-000003/vectors/           the VectorIndex (absent with ``embedder: none``)

A write builds a new generation beside the current one, then replaces the manifest (atomically), then
deletes the old generation: a reader sees the old indexes or the new ones, never half of each.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from troupe.runtime.capabilities import check_name
from troupe.runtime.knowledge.bm25 import BM25Index
from troupe.runtime.knowledge.errors import KnowledgeBackendError
from troupe.runtime.knowledge.vector_index import VectorIndex
from troupe.runtime.storage.location import Storage, open_storage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

CHUNK_SCHEMA = pa.schema([
    ("chunk_id", pa.string()), ("document", pa.string()), ("ordinal", pa.int32()), ("heading", pa.string()),
    ("text", pa.string()), ("start", pa.int64()), ("tokens", pa.int32()),
])


class NamespaceMissingError(KnowledgeBackendError):
    """The namespace has never been ingested at this location."""


class IndexMismatchError(KnowledgeBackendError):
    """The namespace's vectors come from another embedder than the one configured now."""


class Manifest(BaseModel):
    """What a namespace holds and how it was indexed (``manifest.json``)."""

    format_version: int = FORMAT_VERSION
    namespace: str
    generation: int = 0
    """The current ``gen-NNNNNN`` folder."""
    embedder: str | None = None
    """The name of the embedder its vectors come from (``None``: BM25 only, no vectors)."""
    dim: int | None = None
    """The vectors' dimension."""
    chunk_size: int
    overlap: int
    documents: dict[str, int] = Field(default_factory=dict)
    """Chunks per document."""
    chunks: int = 0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def gen_dir(self, generation: int | None = None) -> str:
        return f"{self.namespace}/gen-{self.generation if generation is None else generation:06d}"

    def check_embedder(self, name: str | None, dim: int | None) -> None:
        """Raise :class:`IndexMismatchError` when the vectors were made by another embedder than ``name``."""
        if name is None or self.embedder is None:
            return
        if name != self.embedder or (dim is not None and dim != self.dim):
            raise IndexMismatchError(
                f"knowledge namespace {self.namespace!r} was indexed with embedder {self.embedder!r} (dim {self.dim}) "
                f"but the team now uses {name!r} (dim {dim}): run 'troupe knowledge reindex {self.namespace}' "
                f"to embed it again with the current embedder", namespace=self.namespace)


class KnowledgeStore:
    """The namespaces under one knowledge root."""

    def __init__(self, root: str | Storage) -> None:
        self.storage = open_storage(root)

    def namespaces(self) -> list[str]:
        return [d for d in self.storage.dirs() if self.storage.is_file(f"{d}/{MANIFEST}")]

    def manifest(self, namespace: str) -> Manifest | None:
        try:
            return Manifest.model_validate_json(self.storage.read_bytes(f"{check_name('namespace', namespace)}/{MANIFEST}"))
        except FileNotFoundError:
            return None

    def require(self, namespace: str) -> Manifest:
        found = self.manifest(namespace)
        if found is None:
            known = ", ".join(self.namespaces()) or "none"
            raise NamespaceMissingError(
                f"knowledge namespace {namespace!r} has no index at {self.storage}: ingest it first with "
                f"'troupe knowledge ingest {namespace} PATH...' (namespaces there: {known})", namespace=namespace)
        return found

    # --- writing ------------------------------------------------------------------------------
    def write(self, manifest: Manifest, chunks: pa.Table, bm25: BM25Index, vectors: VectorIndex | None) -> Manifest:
        """Write a new generation holding these indexes and make it current; returns the new manifest."""
        old = self.manifest(manifest.namespace)
        gen = (old.generation if old is not None else 0) + 1
        new = manifest.model_copy(update={"generation": gen, "chunks": chunks.num_rows,
                                          "updated_at": datetime.now(UTC),
                                          "embedder": manifest.embedder if vectors is not None else None,
                                          "dim": manifest.dim if vectors is not None else None})
        base = new.gen_dir()
        self._clear(base)
        self.storage.write_parquet(f"{base}/chunks", chunks.cast(CHUNK_SCHEMA), compression="zstd")
        self.storage.write_parquet(f"{base}/bm25", bm25.postings_table(), compression="zstd")
        if vectors is not None:
            vectors.save(self.storage, f"{base}/vectors")
        self.storage.write_bytes(f"{new.namespace}/{MANIFEST}", new.model_dump_json(indent=2).encode())
        if old is not None and old.generation != gen:
            self._clear(old.gen_dir())
        return new

    def drop(self, namespace: str) -> bool:
        """Delete a namespace; ``False`` when there was none."""
        found = self.manifest(namespace) is not None
        self.storage.delete(f"{namespace}/{MANIFEST}")
        self._clear(namespace)
        return found

    def _clear(self, rel: str) -> None:
        with suppress(FileNotFoundError, OSError):
            self.storage.fs.delete_dir(self.storage.path(rel))

    # --- reading ------------------------------------------------------------------------------
    def read_chunks(self, manifest: Manifest, columns: list[str] | None = None) -> pa.Table:
        files = self.storage.files(f"{manifest.gen_dir()}/chunks", suffix=".parquet")
        if not files:
            return CHUNK_SCHEMA.empty_table() if columns is None else CHUNK_SCHEMA.empty_table().select(columns)
        return pa.concat_tables([self.storage.read_table(f, columns=columns) for f in files])

    def read_bm25(self, manifest: Manifest, lengths: np.ndarray) -> BM25Index:
        files = self.storage.files(f"{manifest.gen_dir()}/bm25", suffix=".parquet")
        return BM25Index.from_tables(pa.concat_tables([self.storage.read_table(f) for f in files]), lengths)

    def read_vectors(self, manifest: Manifest) -> VectorIndex | None:
        if manifest.embedder is None:
            return None
        return VectorIndex.load(self.storage, f"{manifest.gen_dir()}/vectors")

    def describe(self, namespace: str) -> dict[str, object]:
        """What ``troupe knowledge list`` shows of a namespace."""
        m = self.require(namespace)
        return {"namespace": namespace, "documents": len(m.documents), "chunks": m.chunks,
                "embedder": m.embedder or "none (BM25 only)", "dim": m.dim, "generation": m.generation,
                "updated_at": m.updated_at.isoformat(timespec="seconds"), "chunk_size": m.chunk_size,
                "overlap": m.overlap}


__all__ = ["CHUNK_SCHEMA", "IndexMismatchError", "KnowledgeStore", "Manifest", "NamespaceMissingError"]
