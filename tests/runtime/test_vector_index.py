"""VectorIndex: exact cosine search, the HNSW graph above the size threshold (checked against exact),
add/replace/remove, and Parquet in the lake's Storage (readable by DuckDB as it is)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from troupe.runtime.knowledge.vector_index import FILE, GRAPH_FILE, VectorIndex
from troupe.runtime.storage.location import open_storage


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_orders_by_cosine() -> None:
    idx = VectorIndex(3)
    vecs = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 1]], dtype=np.float32)
    idx.build(["x", "y", "xy", "z"], vecs)
    hits = idx.search(np.array([1, 0, 0], dtype=np.float32), 3)
    assert [h[0] for h in hits] == ["x", "xy", "y"]
    assert hits[0][1] == pytest.approx(1.0) and hits[1][1] == pytest.approx(0.6)
    assert len(idx.search(np.array([0, 0, 1.0]), 10)) == 4  # k larger than the index
    assert VectorIndex(3).search(np.ones(3), 5) == []
    with pytest.raises(ValueError, match="3 dimensions"):
        idx.search(np.ones(4), 1)
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        idx.add(["w"], np.ones((1, 4)))


def test_add_replaces_known_ids_and_remove_drops() -> None:
    idx = VectorIndex(2)
    idx.build(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    idx.add(["b", "c"], np.array([[1, 0], [-1, 0]], dtype=np.float32))  # b moves next to a
    assert len(idx) == 3
    assert {h[0] for h in idx.search(np.array([1, 0.0]), 2)} == {"a", "b"}
    idx.remove(["a", "nope"])
    assert idx.ids == ["b", "c"]
    assert idx.search(np.array([1, 0.0]), 1)[0][0] == "b"


def test_hnsw_above_threshold_matches_exact_search() -> None:
    rng = np.random.default_rng(3)
    centres = _unit(rng, 30, 16)
    x = centres[rng.integers(0, 30, 600)] + 0.35 * _unit(rng, 600, 16)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"c{i}" for i in range(len(x))]
    idx = VectorIndex(16, exact_max=200)
    idx.build(ids, x)
    assert idx.approximate
    queries = _unit(rng, 30, 16)
    recall = np.mean([
        len({h[0] for h in idx.search(q, 10)} & {h[0] for h in idx.search_exact(q, 10)}) / 10 for q in queries
    ])
    assert recall >= 0.95
    # appending extends the graph; the new vector is found
    new = _unit(rng, 1, 16)
    idx.add(["fresh"], new)
    assert idx.search(new[0], 1)[0][0] == "fresh"
    # replacing a vector rebuilds it
    idx.add(["c0"], -new)
    assert idx.search(-new[0], 1)[0] == ("c0", pytest.approx(1.0, abs=1e-5))
    idx.remove(["fresh"])
    assert "fresh" not in {h[0] for h in idx.search(new[0], 5)}


def test_save_and_load_through_storage_and_duckdb(tmp_path) -> None:
    rng = np.random.default_rng(0)
    storage = open_storage(tmp_path / "lake")
    vecs = _unit(rng, 50, 8)
    idx = VectorIndex(8)
    idx.build([f"d{i}" for i in range(50)], vecs)
    idx.save(storage, "knowledge/docs")
    again = VectorIndex.load(storage, "knowledge/docs")
    assert again.dim == 8 and again.ids == idx.ids
    assert again.search(vecs[7], 3) == idx.search(vecs[7], 3)
    path = storage.path(f"knowledge/docs/{FILE}")
    q = vecs[7].tolist()
    top = duckdb.sql(f"SELECT id FROM read_parquet('{path}') "
                     f"ORDER BY array_cosine_similarity(vector::FLOAT[8], {q}::FLOAT[8]) DESC LIMIT 1").fetchall()
    assert top == [("d7",)]


def test_the_hnsw_graph_is_saved_and_loaded_not_rebuilt(tmp_path) -> None:
    rng = np.random.default_rng(5)
    storage = open_storage(tmp_path / "lake")
    vecs = _unit(rng, 300, 16)
    ids = [f"v{i}" for i in range(300)]
    idx = VectorIndex(16, exact_max=100)
    idx.build(ids, vecs)
    idx.save(storage, "knowledge/big")
    assert storage.is_file(f"knowledge/big/{GRAPH_FILE}")
    again = VectorIndex.load(storage, "knowledge/big", exact_max=100)
    assert again._graph is not None  # read from storage, not rebuilt on the first search
    assert again.search(vecs[42], 5) == idx.search(vecs[42], 5)
    # a graph that no longer matches the vectors (written by an older save) is ignored and rebuilt
    idx.add(["extra"], _unit(rng, 1, 16))
    sink = pa.BufferOutputStream()
    pq.write_table(idx.to_arrow(), sink)
    storage.write_bytes(f"knowledge/big/{FILE}", sink.getvalue().to_pybytes())
    stale = VectorIndex.load(storage, "knowledge/big", exact_max=100)
    assert stale._graph is None and len(stale) == 301
    assert stale.search(vecs[42], 1)[0][0] == "v42"
