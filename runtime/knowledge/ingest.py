"""Ingest files into a namespace, and reindex one: read, chunk, embed, index, write a new generation.

The work on files (read, chunk, embed) is done batch by batch through a :data:`Mapper`: :func:`inline`
runs the batches here, one after the other; ``troupe.actors.knowledge_tasks.ray_mapper`` runs them
as Ray tasks across the cluster (what ``troupe knowledge ingest`` picks for large corpora). Batches
are plain functions of plain data, so both give the same index. Progress goes to a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from troupe.runtime.capabilities import KnowledgeSettings, check_name
from troupe.runtime.config import ModelProfile
from troupe.runtime.knowledge.bm25 import BM25Index, tokenize
from troupe.runtime.knowledge.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_text
from troupe.runtime.knowledge.embedding import Embedder, get_embedder
from troupe.runtime.knowledge.loaders import UnreadableDocumentError, expand, load
from troupe.runtime.knowledge.store import CHUNK_SCHEMA, IndexMismatchError, KnowledgeStore, Manifest
from troupe.runtime.knowledge.vector_index import VectorIndex

EMBED_BATCH = 256


class EmbedderSpec(BaseModel):
    """How a process that is not this one (a Ray task) builds the same embedder."""

    settings: KnowledgeSettings
    models: dict[str, ModelProfile] = Field(default_factory=dict)


@lru_cache(maxsize=4)
def _embedder_from(spec_json: str) -> Embedder | None:
    spec = EmbedderSpec.model_validate_json(spec_json)
    return get_embedder(spec.settings, spec.models)


def resolve(embedder: Embedder | EmbedderSpec | None) -> Embedder | None:
    """An embedder, built once per process from a spec."""
    return _embedder_from(embedder.model_dump_json()) if isinstance(embedder, EmbedderSpec) else embedder


def indexed_text(heading: str, text: str) -> str:
    """What BM25 and the embedder see of a chunk: its heading path, then its text."""
    return f"{heading}\n{text}" if heading else text


@dataclass
class Prepared:
    """One batch of files, read, chunked and (with an embedder) embedded."""

    chunks: pa.Table
    vectors: np.ndarray | None
    files: int
    skipped: list[str] = field(default_factory=list)


def embed(embedder: Embedder, texts: Sequence[str], *, batch: int = EMBED_BATCH) -> np.ndarray:
    parts = [embedder.embed(list(texts[i:i + batch])) for i in range(0, len(texts), batch)]
    return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, embedder.dim), np.float32)


def prepare(files: Sequence[tuple[str, str]], chunk_size: int, overlap: int,
            embedder: Embedder | EmbedderSpec | None) -> Prepared:
    """Read, chunk and embed ``files`` (``(path, name)`` pairs). A plain function: it runs inline or as a Ray task."""
    rows: dict[str, list[Any]] = {name: [] for name in CHUNK_SCHEMA.names}
    skipped: list[str] = []
    for path, name in files:
        try:
            doc = load(Path(path), name)
        except (UnreadableDocumentError, OSError) as e:
            skipped.append(str(e))
            continue
        for i, c in enumerate(chunk_text(doc.text, size=chunk_size, overlap=overlap, markdown=doc.markdown)):
            for key, value in (("chunk_id", f"{doc.source}#{i}"), ("document", doc.source), ("ordinal", i),
                               ("heading", c.heading), ("text", c.text), ("start", c.start),
                               ("tokens", len(tokenize(indexed_text(c.heading, c.text))))):
                rows[key].append(value)
    table = pa.table(rows, schema=CHUNK_SCHEMA)
    model = resolve(embedder)
    vectors = embed(model, _texts(table)) if model is not None else None
    return Prepared(table, vectors, len(files), skipped)


def embed_texts(texts: Sequence[str], embedder: Embedder | EmbedderSpec) -> np.ndarray:
    """Embed one batch (a plain function: inline or a Ray task)."""
    model = resolve(embedder)
    assert model is not None
    return embed(model, texts)


def _texts(chunks: pa.Table) -> list[str]:
    return [indexed_text(h, t) for h, t in zip(chunks.column("heading").to_pylist(), chunks.column("text").to_pylist(), strict=True)]


class Mapper(Protocol):
    """Runs ``fn(*job)`` for each job; yields ``(job index, result)`` as they finish."""

    remote: bool
    """Whether jobs leave this process (then an embedder travels as its :class:`EmbedderSpec`)."""

    def __call__(self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]: ...


class _Inline:
    remote = False

    def __call__(self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        for i, job in enumerate(jobs):
            yield i, fn(*job)


inline: Mapper = _Inline()


class IngestProgress(BaseModel):
    """One step of an ingest or a reindex (what the CLI draws as a progress bar)."""

    stage: Literal["read", "embed", "index", "write"]
    done: int
    total: int
    chunks: int = 0


class IngestReport(BaseModel):
    namespace: str
    files: int
    documents: int
    chunks_added: int
    chunks_total: int
    embedder: str | None
    skipped: list[str] = Field(default_factory=list)
    seconds: float
    generation: int


Progress = Callable[[IngestProgress], None]


def _noop(_: IngestProgress) -> None:
    pass


@dataclass
class Ingestor:
    """Ingests into, and reindexes, the namespaces under one knowledge root."""

    root: str
    embedder: Embedder | None
    """The embedder in this process (``None``: BM25 only)."""
    spec: EmbedderSpec | None = None
    """How other processes build the same embedder (needed by a remote :class:`Mapper` when ``embedder`` is set)."""
    mapper: Mapper = inline
    progress: Progress = _noop
    chunk_size: int = DEFAULT_SIZE
    overlap: int = DEFAULT_OVERLAP
    batch_files: int = 32

    @classmethod
    def from_settings(cls, root: str, settings: KnowledgeSettings, models: Mapping[str, ModelProfile],
                      **options: Any) -> Ingestor:
        """With the embedder the settings name (:class:`KnowledgeBackendError` with a diagnostic when it cannot be built)."""
        return cls(root, get_embedder(settings, models), EmbedderSpec(settings=settings, models=dict(models)), **options)

    @property
    def _shipped(self) -> Embedder | EmbedderSpec | None:
        if self.embedder is None:
            return None
        return self.spec if self.mapper.remote and self.spec is not None else self.embedder

    def ingest(self, namespace: str, paths: Sequence[str | Path]) -> IngestReport:
        started = time.perf_counter()
        check_name("knowledge namespace", namespace)
        store = KnowledgeStore(self.root)
        old = store.manifest(namespace)
        if old is not None and old.embedder is not None and self.embedder is None:
            raise IndexMismatchError(
                f"knowledge namespace {namespace!r} has vectors from {old.embedder!r} but no embedder is configured "
                f"now: run 'troupe knowledge reindex {namespace}' (BM25 only) first, or configure that embedder",
                namespace=namespace)
        if old is not None and self.embedder is not None:
            old.check_embedder(self.embedder.name, self.embedder.dim)
        files = [(str(p), name) for p, name in expand(paths)]
        batches = [files[i:i + self.batch_files] for i in range(0, len(files), self.batch_files)]
        parts: list[Prepared | None] = [None] * len(batches)
        done = chunks = 0
        self.progress(IngestProgress(stage="read", done=0, total=len(files)))
        for i, part in self.mapper(prepare, [(b, self.chunk_size, self.overlap, self._shipped) for b in batches]):
            parts[i] = part
            done += part.files
            chunks += part.chunks.num_rows
            self.progress(IngestProgress(stage="read", done=done, total=len(files), chunks=chunks))
        ready = [p for p in parts if p is not None]
        new = pa.concat_tables([p.chunks for p in ready]) if ready else CHUNK_SCHEMA.empty_table()
        new_docs = set(new.column("document").to_pylist())
        kept, vectors = self._kept(store, old, new_docs)
        if self.embedder is not None:
            fresh = [p.vectors for p in ready if p.vectors is not None]
            assert vectors is not None
            if fresh:
                vectors.add(new.column("chunk_id").to_pylist(), np.vstack(fresh))
        manifest = self._write(store, namespace, pa.concat_tables([kept, new]), vectors)
        return IngestReport(namespace=namespace, files=len(files), documents=len(new_docs), chunks_added=new.num_rows,
                            chunks_total=manifest.chunks, embedder=manifest.embedder,
                            skipped=[s for p in ready for s in p.skipped], seconds=time.perf_counter() - started,
                            generation=manifest.generation)

    def _kept(self, store: KnowledgeStore, old: Manifest | None, replaced: set[str]) -> tuple[pa.Table, VectorIndex | None]:
        """The old chunks of documents not ingested again, and a vector index holding (only) their vectors."""
        if old is None:
            return CHUNK_SCHEMA.empty_table(), (VectorIndex(self.embedder.dim) if self.embedder is not None else None)
        chunks = store.read_chunks(old)
        gone = pc.is_in(chunks.column("document"), pa.array(sorted(replaced), pa.string()))
        kept = chunks.filter(pc.invert(gone))
        if self.embedder is None:
            return kept, None
        vectors = store.read_vectors(old)
        if vectors is None:  # BM25-only so far: the kept chunks get vectors now
            vectors = VectorIndex(self.embedder.dim)
            if kept.num_rows:
                vectors.add(kept.column("chunk_id").to_pylist(), self._embed_all(_texts(kept)))
        else:
            vectors.remove(chunks.filter(gone).column("chunk_id").to_pylist())
        return kept, vectors

    def reindex(self, namespace: str) -> IngestReport:
        """Rebuild a namespace's BM25 and vectors from its stored chunks with the current embedder."""
        started = time.perf_counter()
        store = KnowledgeStore(self.root)
        old = store.require(namespace)
        chunks = store.read_chunks(old)
        vectors = None
        if self.embedder is not None:
            vectors = VectorIndex(self.embedder.dim)
            if chunks.num_rows:
                vectors.build(chunks.column("chunk_id").to_pylist(), self._embed_all(_texts(chunks)))
        manifest = self._write(store, namespace, chunks, vectors, old)
        return IngestReport(namespace=namespace, files=0, documents=len(manifest.documents), chunks_added=0,
                            chunks_total=manifest.chunks, embedder=manifest.embedder,
                            seconds=time.perf_counter() - started, generation=manifest.generation)

    def _embed_all(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        jobs = [(texts[i:i + EMBED_BATCH * 4], self._shipped) for i in range(0, len(texts), EMBED_BATCH * 4)]
        out: list[np.ndarray | None] = [None] * len(jobs)
        self.progress(IngestProgress(stage="embed", done=0, total=len(texts)))
        done = 0
        for i, arr in self.mapper(embed_texts, jobs):
            out[i] = arr
            done += len(arr)
            self.progress(IngestProgress(stage="embed", done=done, total=len(texts)))
        return np.vstack([a for a in out if a is not None])

    def _write(self, store: KnowledgeStore, namespace: str, chunks: pa.Table, vectors: VectorIndex | None,
               old: Manifest | None = None) -> Manifest:
        self.progress(IngestProgress(stage="index", done=0, total=1, chunks=chunks.num_rows))
        bm25 = BM25Index.build(_texts(chunks))
        docs: dict[str, int] = {}
        for d in chunks.column("document").to_pylist():
            docs[d] = docs.get(d, 0) + 1
        e = self.embedder
        manifest = Manifest(namespace=namespace, embedder=e.name if e else None, dim=e.dim if e else None,
                            chunk_size=old.chunk_size if old else self.chunk_size,
                            overlap=old.overlap if old else self.overlap, documents=docs)
        self.progress(IngestProgress(stage="write", done=0, total=1, chunks=chunks.num_rows))
        written = store.write(manifest, chunks, bm25, vectors)
        self.progress(IngestProgress(stage="write", done=1, total=1, chunks=chunks.num_rows))
        return written


__all__ = ["EmbedderSpec", "IngestProgress", "IngestReport", "Ingestor", "Mapper", "Prepared", "embed",
           "embed_texts", "indexed_text", "inline", "prepare", "resolve"]
