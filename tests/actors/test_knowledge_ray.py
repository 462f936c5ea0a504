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
