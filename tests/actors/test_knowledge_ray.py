"""Knowledge on Ray: the knowledge_search scenario on the session-wide Ray, and ingestion fanned out as Ray tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.knowledge_session import check_session, ingest_corpus, search_team
from troupe.actors.knowledge_tasks import RayMapper
from troupe.runtime.api import Troupe
from troupe.runtime.knowledge.ingest import Ingestor
from troupe.runtime.knowledge.store import KnowledgeStore
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


async def test_a_session_on_ray_searches_its_namespace_and_is_refused_another(troupe_ray: Troupe, lake: Path,
                                                                              tmp_path: Path) -> None:
    ingest_corpus(lake, tmp_path)
    result = await troupe_ray.run(search_team(), "what adds PDF support?", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    check_session(lake, result.session_id)


def test_ingestion_as_ray_tasks_builds_the_same_index_as_inline(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(9):
        (docs / f"d{i}.txt").write_text(f"document {i} talks about topic{i} " * 30)
    inline = Ingestor(str(tmp_path / "a"), None, chunk_size=300, overlap=30, batch_files=2).ingest("ns", [docs])
    fanned = Ingestor(str(tmp_path / "b"), None, chunk_size=300, overlap=30, batch_files=2,
                      mapper=RayMapper(window=2)).ingest("ns", [docs])
    assert (fanned.files, fanned.chunks_total) == (inline.files, inline.chunks_total) == (9, inline.chunks_total)
    a, b = KnowledgeStore(str(tmp_path / "a")), KnowledgeStore(str(tmp_path / "b"))
    assert a.read_chunks(a.require("ns")).equals(b.read_chunks(b.require("ns")))


def test_troupe_run_finds_what_troupe_knowledge_ingest_wrote_with_no_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from troupe.runtime.cli.main import main
    from troupe.runtime.eventlog.lake import query

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TROUPE_LAKE", raising=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "answer.md").write_text("# Answer\nThe answer to the question is forty-two.")
    (tmp_path / "docs" / "other.md").write_text("# Other\nNothing to see here about foxes.")
    (tmp_path / "team.yaml").write_text(
        "name: kn\nentry: lead\ndefault_model: m\n"
        "models: {m: {provider: scripted, scripts: {lead: [{tool_calls: [{name: knowledge_search, "
        "arguments: {query: what is the answer}}]}, {text: done}]}}}\n"
        "agents: [{id: lead, knowledge: [kb]}]\n")  # no tools: the grant brings knowledge_search
    assert main(["knowledge", "ingest", "kb", "docs"]) == 0  # the default embedder, the default lake
    capsys.readouterr()
    assert main(["run", "team.yaml", "What is the answer?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["lake"] == str(tmp_path / ".troupe" / "lake")
    [row] = query(out["lake"], "select payload from events where type = 'knowledge.searched' "
                               f"and session_id = '{out['session_id']}'").to_pylist()
    searched = json.loads(row["payload"])
    assert searched["mode"] == "hybrid" and searched["hits"][0]["document"] == "docs/answer.md"
