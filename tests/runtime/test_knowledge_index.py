"""BM25, reciprocal-rank fusion, the rerank, and a namespace's storage (no Ray, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from troupe.runtime.knowledge.bm25 import BM25Index, tokenize
from troupe.runtime.knowledge.fusion import rrf
from troupe.runtime.knowledge.ingest import Ingestor, IngestProgress
from troupe.runtime.knowledge.rerank import rerank
from troupe.runtime.knowledge.search import load_index
from troupe.runtime.knowledge.store import IndexMismatchError, KnowledgeStore, NamespaceMissingError

TEXTS = ["the quick brown fox jumps", "a lazy dog sleeps all day", "the fox and the dog are friends",
         "install troupe with pip install troupe-runtime", "nothing relevant here at all"]


def test_tokenize_lowercases_and_drops_stopwords() -> None:
    assert tokenize("The Quick, brown FOX! was_here 42") == ["quick", "brown", "fox", "here", "42"]
    assert tokenize("What is the Install command?") == ["install", "command"]


def test_bm25_ranks_by_term_rarity_and_frequency() -> None:
    index = BM25Index.build(TEXTS)
    hits = index.search("fox", 10)
    assert [row for row, _ in hits] == [0, 2] or [row for row, _ in hits] == [2, 0]
    assert all(score > 0 for _, score in hits)
    assert [row for row, _ in index.search("install pip", 3)] == [3]
    assert index.search("zebra", 3) == []
    both = index.search("fox dog", 5)
    assert both[0][0] == 2  # the only chunk with both terms


def test_bm25_round_trips_through_its_parquet_table() -> None:
    index = BM25Index.build(TEXTS)
    again = BM25Index.from_tables(index.postings_table(), index.lengths)
    for q in ("fox", "dog sleeps", "install troupe"):
        assert again.search(q, 5) == index.search(q, 5)


def test_bm25_of_nothing() -> None:
    index = BM25Index.build([])
    assert len(index) == 0 and index.search("x", 3) == []


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]])
    assert [x for x, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf([["a", "b"]], limit=1) == [("a", pytest.approx(1 / 61))]


def test_rerank_prefers_chunks_covering_the_whole_query() -> None:
    cands = [("rare", "fox fox fox fox", 0.03), ("all", "the quick brown fox", 0.02)]
    assert [c for c, _ in rerank("quick brown fox", cands)] == ["all", "rare"]


def _corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text("# Install\nInstall troupe with pip install troupe-runtime.\n\n"
                                     "## Extras\nThe knowledge extra adds PDF support.\n")
    (docs / "animals.txt").write_text("The quick brown fox jumps over the lazy dog.")
    return docs


def test_ingest_writes_a_namespace_that_search_reads_bm25_only(tmp_path: Path) -> None:
    root = str(tmp_path / "kb")
    seen: list[IngestProgress] = []
    report = Ingestor(root, None, progress=seen.append, chunk_size=200, overlap=20).ingest("docs", [_corpus(tmp_path)])
    assert (report.files, report.documents, report.chunks_total, report.embedder) == (2, 2, 3, None)
    assert next(p.stage for p in seen) == "read" and seen[-1].stage == "write"
    assert any(p.stage == "read" and p.done == 2 and p.chunks == 3 for p in seen)
    store = KnowledgeStore(root)
    assert store.namespaces() == ["docs"]
    m = store.require("docs")
    assert m.documents == {"docs/animals.txt": 1, "docs/install.md": 2} and m.embedder is None
    result = load_index(store, "docs").search("PDF support", 2)
    assert result.mode == "bm25"
    top = result.hits[0]
    assert (top.document, top.chunk_id, top.heading) == ("docs/install.md", "docs/install.md#1", "Install > Extras")
    assert "knowledge extra" in top.text


def test_reingesting_a_document_replaces_its_chunks_and_a_new_generation_replaces_the_old(tmp_path: Path) -> None:
    root = str(tmp_path / "kb")
    docs = _corpus(tmp_path)
    ing = Ingestor(root, None, chunk_size=200, overlap=20)
    ing.ingest("docs", [docs])
    (docs / "animals.txt").write_text("Zebras graze on the savanna.")
    report = ing.ingest("docs", [docs])
    store = KnowledgeStore(root)
    m = store.require("docs")
    assert report.chunks_added == 3 and m.chunks == 3 and m.generation == 2
    assert sorted(m.documents) == ["docs/animals.txt", "docs/install.md"]
    assert store.storage.dirs("docs") == ["gen-000002"]  # the old generation is gone
    index = load_index(store, "docs")
    assert index.search("zebras", 3).hits[0].document == "docs/animals.txt"
    assert index.search("fox", 3).hits == []
    single = tmp_path / "extra.txt"
    single.write_text("a file named as given")
    ing.ingest("docs", [single])
    assert store.require("docs").documents[str(single)] == 1


def test_missing_namespace_and_drop(tmp_path: Path) -> None:
    root = str(tmp_path / "kb")
    with pytest.raises(NamespaceMissingError, match="troupe knowledge ingest docs"):
        load_index(KnowledgeStore(root), "docs")
    Ingestor(root, None).ingest("docs", [_corpus(tmp_path)])
    store = KnowledgeStore(root)
    assert store.drop("docs") is True
    assert store.namespaces() == [] and store.drop("docs") is False


def test_bad_namespace_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        Ingestor(str(tmp_path), None).ingest("../etc", [_corpus(tmp_path)])


def test_manifest_mismatch_says_to_reindex(tmp_path: Path) -> None:
    from troupe.runtime.knowledge.store import Manifest

    m = Manifest(namespace="docs", embedder="a", dim=8, chunk_size=10, overlap=1)
    m.check_embedder("a", 8)
    m.check_embedder(None, None)
    with pytest.raises(IndexMismatchError, match="troupe knowledge reindex docs"):
        m.check_embedder("b", 8)
