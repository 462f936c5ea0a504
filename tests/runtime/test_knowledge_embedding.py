"""Knowledge embedders: the embedded default (WordLlama's static table from its wheel, sha256-checked),
an OpenAI-compatible /v1/embeddings endpoint through the real ``openai`` client, and the diagnostics
when a model, package, profile or endpoint is missing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.support.openai_server import OpenAICompatServer, free_port, hashed_embedding
from troupe.runtime.capabilities import KnowledgeSettings
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError
from troupe.runtime.knowledge import static_model
from troupe.runtime.knowledge.embedding import Embedder, get_embedder
from troupe.runtime.knowledge.errors import KnowledgeBackendError

# A small retrieval check of the default model: each query's relevant document must rank first.
DOCS = [
    "To reset your password, open Settings, choose Security and click 'Forgot password'.",
    "The cluster autoscaler adds worker nodes when pending tasks wait for CPUs.",
    "Invoices are emailed on the first day of each month and can be paid by card.",
    "Our office is closed on public holidays; support answers by email within a day.",
    "Parquet files store columns together, so scans that read a few columns are fast.",
    "The recipe needs two eggs, flour, sugar and butter, baked for 25 minutes.",
]
QUERIES = [
    ("how do I change my login password", 0),
    ("adding more machines to the cluster automatically", 1),
    ("when do I get my monthly bill", 2),
    ("is support available during holidays", 3),
    ("columnar file format for fast analytics", 4),
    ("how long to bake the cake", 5),
]


def _settings(embedder: str) -> KnowledgeSettings:
    return KnowledgeSettings(embedder=embedder)


def test_none_means_bm25_only() -> None:
    assert get_embedder(_settings("none"), {}) is None


def test_default_embedder_shape_norm_and_determinism() -> None:
    emb = get_embedder(_settings("default"), {})
    assert isinstance(emb, Embedder)
    assert emb.name == "wordllama-l2-supercat-256" and emb.dim == 256
    texts = ["Ray schedules tasks on a cluster.", "", "   ", "Ray schedules tasks on a cluster."]
    vecs = emb.embed(texts)
    assert vecs.dtype == np.float32 and vecs.shape == (4, 256)
    assert np.allclose(np.linalg.norm(vecs[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert not vecs[1].any() and not vecs[2].any()  # nothing to embed: a zero row, no NaN
    assert np.array_equal(vecs[0], vecs[3])
    # batching does not change a text's vector
    many = emb.embed([f"document number {i} about topic {i % 7}" for i in range(70)])
    one = emb.embed(["document number 69 about topic 6"])
    assert np.allclose(many[69], one[0], atol=1e-6)
    assert emb.embed([]).shape == (0, 256)


def test_default_embedder_ranks_the_relevant_document_first() -> None:
    emb = get_embedder(_settings("default"), {})
    assert emb is not None
    d = emb.embed(DOCS)
    q = emb.embed([text for text, _ in QUERIES])
    best = (q @ d.T).argmax(axis=1)
    assert best.tolist() == [want for _, want in QUERIES]


def test_default_weights_are_checked_against_the_pin(tmp_path) -> None:
    bad = dataclasses.replace(static_model.DEFAULT_MODEL, weights_sha256="0" * 64)
    with pytest.raises(KnowledgeBackendError, match="not the pinned 0000") as e:
        static_model.load(bad)
    assert "--force-reinstall" in e.value.message and "embedder: none" in e.value.message


def test_missing_package_says_which_extra_to_install() -> None:
    spec = dataclasses.replace(static_model.DEFAULT_MODEL, distribution="no-such-embedding-package")
    with pytest.raises(KnowledgeBackendError) as e:
        static_model.load(spec)
    msg = e.value.message
    assert "'no-such-embedding-package', which is not installed" in msg
    assert "pip install 'troupe-runtime[knowledge]'" in msg and "knowledge: {embedder: none}" in msg
    assert isinstance(e.value, ConfigError)


def test_missing_file_in_package() -> None:
    spec = dataclasses.replace(static_model.DEFAULT_MODEL, weights="wordllama/weights/absent.safetensors")
    with pytest.raises(KnowledgeBackendError, match="absent.safetensors from wordllama"):
        static_model.load(spec)


def test_unknown_profile_and_non_openai_profile() -> None:
    models = {"chat": ModelProfile(provider="scripted")}
    with pytest.raises(KnowledgeBackendError, match=r"'embedder-x' is neither .* \(profiles: chat\)"):
        get_embedder(_settings("embedder-x"), models)
    with pytest.raises(KnowledgeBackendError, match="is a 'scripted' model profile"):
        get_embedder(_settings("chat"), models)


def test_endpoint_embedder_batches_and_normalises() -> None:
    with OpenAICompatServer(embedding_dim=24) as srv:
        profile = ModelProfile(model="embed-small", base_url=srv.base_url, timeout_s=5)
        emb = get_embedder(_settings("emb"), {"emb": profile})
        assert emb is not None and emb.name == "emb:embed-small"
        emb._batch = 4  # type: ignore[attr-defined]  # several requests for 10 texts
        texts = [f"alpha beta {i}" for i in range(9)] + [""]
        vecs = emb.embed(texts)
        assert emb.dim == 24 and vecs.shape == (10, 24) and vecs.dtype == np.float32
        posts = [r for r in srv.requests if r.path.endswith("/embeddings")]
        assert [len(r.body["input"]) for r in posts] == [4, 4, 2]
        assert {r.body["model"] for r in posts} == {"embed-small"}
        want = np.asarray(hashed_embedding(texts[3], 24), dtype=np.float32)
        assert np.allclose(vecs[3], want / np.linalg.norm(want), atol=1e-6)
        assert np.allclose(np.linalg.norm(vecs[:9], axis=1), 1.0, atol=1e-5)


def test_endpoint_embedder_sends_the_profile_key(monkeypatch) -> None:
    monkeypatch.setenv("EMB_TEST_KEY", "sk-embed-123")
    with OpenAICompatServer() as srv:
        profile = ModelProfile(model="m", base_url=srv.base_url, api_key_env="EMB_TEST_KEY", timeout_s=5)
        emb = get_embedder(_settings("emb"), {"emb": profile})
        assert emb is not None
        emb.embed(["hello"])
        assert srv.requests[-1].headers["authorization"] == "Bearer sk-embed-123"


def test_endpoint_missing_key_model_or_server_are_diagnosed(monkeypatch) -> None:
    monkeypatch.delenv("EMB_ABSENT_KEY", raising=False)
    profile = ModelProfile(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="EMB_ABSENT_KEY")
    with pytest.raises(KnowledgeBackendError, match="EMB_ABSENT_KEY.*not set"):
        get_embedder(_settings("emb"), {"emb": profile})
    with OpenAICompatServer(embedding_models=("served",)) as srv:
        profile = ModelProfile(model="unserved", base_url=srv.base_url, timeout_s=5, max_retries=0)
        emb = get_embedder(_settings("emb"), {"emb": profile})
        assert emb is not None
        with pytest.raises(KnowledgeBackendError, match=r"model 'unserved'\) answered HTTP 404") as e:
            emb.embed(["x"])
        assert "knowledge: {embedder: none}" in e.value.message
    down = ModelProfile(model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2, max_retries=0)
    emb = get_embedder(_settings("emb"), {"emb": down})
    assert emb is not None
    with pytest.raises(KnowledgeBackendError, match="cannot be reached"):
        _ = emb.dim
