"""knowledge_search in a whole session in process, and the tool against its context (no Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime.knowledge_fake import FakeEmbedder
from tests.runtime.knowledge_session import check_session, ingest_corpus, search_team
from troupe.runtime.api import Troupe
from troupe.runtime.capabilities import KnowledgeSettings
from troupe.runtime.config import AgentSpec
from troupe.runtime.errors import PermissionDeniedError, ToolUnavailableError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.knowledge.access import KnowledgeAccess
from troupe.runtime.knowledge.errors import KnowledgeBackendError
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.builtins.knowledge import knowledge_search
from troupe.tools.context import ToolContext


async def test_a_session_searches_its_namespace_and_is_refused_another(troupe: Troupe, lake: Path,
                                                                       tmp_path: Path) -> None:
    ingest_corpus(lake, tmp_path)
    result = await troupe.run(search_team(), "what adds PDF support?", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    check_session(lake, result.session_id)


def _ctx(access: KnowledgeAccess | None, knowledge: list[str], emitted: list[Any]) -> ToolContext:
    return ToolContext(session_id=SessionId("s"), run_id=RunId("r"), agent=AgentId("a"), services=None,  # type: ignore[arg-type]
                       spec=AgentSpec(id="a", knowledge=knowledge), tool_call_id="c1", knowledge=access,
                       emit=lambda payload, **f: emitted.append((payload, f)))


async def test_the_tool_refuses_without_grants_and_reports_a_missing_backend(tmp_path: Path) -> None:
    emitted: list[Any] = []
    ingest_corpus(tmp_path / "lake", tmp_path)
    with pytest.raises(PermissionDeniedError, match="granted no knowledge namespace"):
        await knowledge_search.call_validated({"query": "x"}, _ctx(None, [], emitted))
    assert emitted[0][0].reason == "knowledge_namespace"

    def missing() -> Any:
        raise KnowledgeBackendError("the default embedder needs the 'wordllama' package: pip install ...")

    broken = KnowledgeAccess(str(tmp_path / "lake" / "knowledge"), make_embedder=missing)
    with pytest.raises(ToolUnavailableError, match="wordllama"):
        await knowledge_search.call_validated({"query": "x"}, _ctx(broken, ["docs"], emitted))
    with pytest.raises(ToolUnavailableError, match="no lake"):
        await knowledge_search.call_validated({"query": "x"}, _ctx(None, ["docs"], emitted))


async def test_searching_every_granted_namespace_fuses_them(tmp_path: Path) -> None:
    emitted: list[Any] = []
    ingest_corpus(tmp_path / "lake", tmp_path)
    access = KnowledgeAccess(str(tmp_path / "lake" / "knowledge"), make_embedder=lambda: None)
    out = await knowledge_search.call_validated({"query": "PDF", "k": 3}, _ctx(access, ["docs", "secret"], emitted))
    assert {r["namespace"] for r in out["results"]} == {"docs", "secret"}
    assert emitted[-1][0].namespaces == ["docs", "secret"]


def test_hybrid_search_finds_a_synonym_bm25_cannot(tmp_path: Path) -> None:
    from troupe.runtime.knowledge.ingest import Ingestor
    from troupe.runtime.knowledge.search import load_index
    from troupe.runtime.knowledge.store import IndexMismatchError, KnowledgeStore

    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.txt").write_text("The automobile needs new tyres before winter.")
    (docs / "b.txt").write_text("Bake bread at two hundred degrees.")
    root = str(tmp_path / "kb")
    fake = FakeEmbedder()
    Ingestor(root, fake).ingest("cars", [docs])
    store = KnowledgeStore(root)
    assert (store.require("cars").embedder, store.require("cars").dim) == ("fake-hash", 64)
    index = load_index(store, "cars")
    assert index.search("car tyres", 1).hits[0].document == "d/a.txt"  # BM25 alone: 'tyres'
    hybrid = index.search("car", 2, embedder=fake)
    assert hybrid.mode == "hybrid" and hybrid.hits[0].document == "d/a.txt"  # only the vectors know car = automobile
    assert index.search("car", 2).hits == []
    assert index.search("car", 2, embedder=fake, rerank_hits=True).reranked
    with pytest.raises(IndexMismatchError, match="reindex cars"):
        index.search("car", 2, embedder=FakeEmbedder("other", 64))
    Ingestor(root, FakeEmbedder("other", 32)).reindex("cars")
    again = load_index(store, "cars")
    assert (again.manifest.embedder, again.manifest.dim, again.manifest.generation) == ("other", 32, 2)
    assert again.search("car", 1, embedder=FakeEmbedder("other", 32)).hits[0].document == "d/a.txt"


def test_a_knowledge_grant_brings_the_tool_with_it() -> None:
    from troupe.tools.builtins import agent_tool_names

    assert agent_tool_names(AgentSpec(id="a", tools=["calculator"], knowledge=["kb"])) == ["calculator", "knowledge_search"]
    assert agent_tool_names(AgentSpec(id="a", tools=["knowledge_search"], knowledge=["kb"])) == ["knowledge_search"]
    assert agent_tool_names(AgentSpec(id="a", tools=["calculator"])) == ["calculator"]


def test_a_session_without_a_lake_searches_where_the_cli_ingests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from troupe.runtime.cli.main import main
    from troupe.runtime.ids import RunId, SessionId
    from troupe.runtime.session.spec import SessionSpec, sample_dir_for

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TROUPE_LAKE", raising=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\nThe answer is forty-two.")
    assert main(["knowledge", "ingest", "kb", "docs", "--embedder", "none"]) == 0
    capsys.readouterr()
    spec = SessionSpec(session_id=SessionId("s-1"), run_id=RunId("r-1"), team=search_team(), lake=None)
    access = spec.knowledge_access()
    assert access is not None and access.root == str(tmp_path / ".troupe" / "lake" / "knowledge")
    assert access.search(["kb"], "answer").hits[0].document == "docs/a.md"
    per_sample = search_team().model_copy(update={"knowledge": KnowledgeSettings(embedder="none", location="${sample_dir}/kb")})
    spec = SessionSpec(session_id=SessionId("s-2"), run_id=RunId("r-1"), team=per_sample)
    assert spec.knowledge_access().root == f"{sample_dir_for(spec)}/kb"  # type: ignore[union-attr]
