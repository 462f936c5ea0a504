"""Knowledge benchmark: ingest a corpus of 100,000+ chunks, then query its vectors, against exact search.

1. A deterministic, text-like corpus: Markdown documents whose paragraphs (one chunk each, ~900
   characters) mix filler words, their document's topic words and words of their own, drawn from
   the embedded model's vocabulary (its whole words), so neighbours exist at every scale.
2. Ingest: ``Ingestor`` (the path ``troupe knowledge ingest`` takes: read, chunk, embed with the
   embedded default model, BM25, Parquet in the lake), chunks/s; then the vector index is loaded
   as a search would load it and its HNSW graph built (timed apart: the first search pays it).
3. Queries: ten content words of a random chunk, embedded; ``VectorIndex.search`` (HNSW above
   20,000 vectors) against ``VectorIndex.search_exact`` (numpy brute force) and DuckDB's
   ``array_cosine_similarity`` brute force over the same Parquet, in the same run: p50/p95 and
   recall@10 against the exact top 10. Also the whole hybrid search (BM25 + vectors + fusion).
   Target: recall@10 >= 0.95 at >= 10x the brute-force query speed.

Run: ``.venv/bin/python benchmarks/knowledge.py`` (100,500 chunks; a few minutes on 2 cores;
``--smoke``: seconds). The last line is JSON. Needs the 'knowledge' extra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args

FILLER = ("the", "a", "of", "to", "and", "in", "is", "for", "on", "that", "with", "as", "by", "it", "this", "from",
          "be", "are", "or", "was", "at", "an", "which", "when", "into", "over", "under", "their", "its", "also",
          "more", "most", "other", "such", "only", "these", "those")
PARAGRAPHS_PER_DOC = 10
TOPICS = 1000


def vocabulary() -> list[str]:
    """Whole words of the embedded model's tokenizer (5+ letters), sorted: deterministic for a pinned model."""
    from troupe.runtime.knowledge.static_model import load

    tok = load()._tokenizer
    return sorted(w[1:] for w in tok.get_vocab() if w.startswith("\u2581") and w[1:].isalpha() and len(w) > 5)


def corpus(chunks: int, seed: int = 7) -> tuple[list[str], list[list[str]]]:
    """``chunks // 10`` Markdown documents of ten paragraphs, and each paragraph's content words."""
    words = np.array(vocabulary())
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, len(words), (TOPICS, 60))
    docs: list[str] = []
    content: list[list[str]] = []
    for d in range((chunks + PARAGRAPHS_PER_DOC - 1) // PARAGRAPHS_PER_DOC):
        topic, own = topics[rng.integers(TOPICS)], rng.integers(0, len(words), 12)
        paras = []
        for _ in range(PARAGRAPHS_PER_DOC):
            n = int(rng.integers(100, 120))
            u = rng.random(n)
            ids = np.where(u < 0.3, own[rng.integers(0, 12, n)],
                           np.where(u < 0.8, topic[rng.integers(0, 60, n)], rng.integers(0, len(words), n)))
            text = words[ids].astype(object)
            content.append(list(text))
            filler = rng.random(n) < 0.35
            text[filler] = np.array(FILLER, dtype=object)[rng.integers(0, len(FILLER), int(filler.sum()))]
            paras.append(" ".join(text)[:880] + ".")
        docs.append(f"# Document {d}\n\n" + "\n\n".join(paras) + "\n")
    return docs, content


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50_ms": round(statistics.median(xs) * 1e3, 3),
            "p95_ms": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1e3, 3)}


def _timed(fn: Any, items: list[Any]) -> tuple[list[Any], list[float]]:
    out, lat = [], []
    for item in items:
        t = time.perf_counter()
        out.append(fn(item))
        lat.append(time.perf_counter() - t)
    return out, lat


def run(chunks: int, queries: int, workdir: Path) -> dict[str, Any]:
    import duckdb

    from troupe.runtime.capabilities import KnowledgeSettings
    from troupe.runtime.knowledge.ingest import Ingestor
    from troupe.runtime.knowledge.search import load_index
    from troupe.runtime.knowledge.store import KnowledgeStore
    from troupe.runtime.knowledge.vector_index import FILE

    t0 = time.perf_counter()
    docs, content = corpus(chunks)
    src = workdir / "docs"
    src.mkdir()
    for i, text in enumerate(docs):
        (src / f"doc{i:06d}.md").write_text(text)
    generated_s = time.perf_counter() - t0

    root = str(workdir / "knowledge")
    ingestor = Ingestor.from_settings(root, KnowledgeSettings(), {})
    assert ingestor.embedder is not None
    t0 = time.perf_counter()
    report = ingestor.ingest("bench", [src])
    ingest_s = time.perf_counter() - t0

    store = KnowledgeStore(root)
    manifest = store.require("bench")
    t0 = time.perf_counter()
    index = store.read_vectors(manifest)
    load_s = time.perf_counter() - t0
    assert index is not None
    n = len(index)
    rng = np.random.default_rng(11)
    picks = rng.integers(0, len(content), queries)
    qtexts = [" ".join(rng.choice(content[p], 10)) for p in picks]
    qvecs = ingestor.embedder.embed(qtexts)
    t0 = time.perf_counter()
    index.search(qvecs[0], 10)  # builds the HNSW graph above the threshold
    graph_s = time.perf_counter() - t0

    exact, exact_lat = _timed(lambda q: [h[0] for h in index.search_exact(q, 10)], list(qvecs))

    def recall_of(found: list[list[str]]) -> float:
        return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found, exact, strict=False)]))

    default_ef, curve = index.ef_search, {}
    for ef in (64, 128, 256, 320, 512):
        index.ef_search = ef
        found, lat = _timed(lambda q: [h[0] for h in index.search(q, 10)], list(qvecs))
        curve[f"ef{ef}"] = {**_ms(lat), "recall_at_10": round(recall_of(found), 4)}
    index.ef_search = default_ef
    approx, approx_lat = _timed(lambda q: [h[0] for h in index.search(q, 10)], list(qvecs))
    recall = recall_of(approx)

    vec_file = store.storage.path(f"{manifest.gen_dir()}/vectors/{FILE}")
    con = duckdb.connect()
    dim = index.dim
    con.execute(f"CREATE TABLE v AS SELECT id, vector::FLOAT[{dim}] AS vector FROM read_parquet('{vec_file}')")
    sql = f"SELECT id FROM v ORDER BY array_cosine_similarity(vector, $q::FLOAT[{dim}]) DESC LIMIT 10"
    few = list(qvecs[: max(5, queries // 10)])
    duck, duck_lat = _timed(lambda q: [r[0] for r in con.execute(sql, {"q": q.tolist()}).fetchall()], few)
    duck_recall = recall_of(duck)

    ns_index = load_index(store, "bench")
    _, hybrid_lat = _timed(lambda q: ns_index.search(q, 10, embedder=ingestor.embedder), qtexts[: max(5, queries // 4)])

    approx_p50 = statistics.median(approx_lat)
    return {
        "benchmark": "knowledge",
        "chunks": n,
        "documents": report.documents,
        "dim": dim,
        "embedder": report.embedder,
        "approximate": index.approximate,
        "corpus_generated_s": round(generated_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ingest_chunks_per_s": round(n / ingest_s, 1),
        "vectors_load_s": round(load_s, 2),
        "hnsw_build_s": round(graph_s, 2),
        "ingest_and_graph_chunks_per_s": round(n / (ingest_s + graph_s), 1),
        "query": {**_ms(approx_lat), "recall_at_10": round(recall, 4), "ef_search": default_ef},
        "ef_curve": curve,
        "exact_numpy": _ms(exact_lat),
        "exact_duckdb": {**_ms(duck_lat), "recall_at_10": round(duck_recall, 4)},
        "speedup_vs_numpy_p50": round(statistics.median(exact_lat) / approx_p50, 1),
        "speedup_vs_duckdb_p50": round(statistics.median(duck_lat) / approx_p50, 1),
        "hybrid_search": _ms(hybrid_lat),
        "queries": queries,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=101_000, help="about this many chunks (10 per document)")
    parser.add_argument("--queries", type=int, default=200)
    args = parse_args(parser, smoke={"chunks": 2000, "queries": 20}, argv=argv)
    with tempfile.TemporaryDirectory(prefix="troupe-knowledge-bench-") as tmp:
        result = run(args.chunks, args.queries, Path(tmp))
    for key, value in result.items():
        print(f"{key:>32}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
