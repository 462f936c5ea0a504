"""One knowledge_search scenario, run in process (tests/runtime/test_knowledge_tool.py) and on Ray
(tests/actors/test_knowledge_ray.py): a granted search finds the chunk, another namespace is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.knowledge.ingest import Ingestor


def ingest_corpus(lake: Path, tmp_path: Path) -> None:
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "install.md").write_text("# Install\nInstall troupe with pip install troupe-runtime.\n\n"
                                     "## Extras\nThe knowledge extra adds PDF support through pypdf.\n")
    (docs / "animals.txt").write_text("The quick brown fox jumps over the lazy dog.")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "plans.txt").write_text("The launch code for the PDF project is 1234.")
    ing = Ingestor(str(lake / "knowledge"), None, chunk_size=300, overlap=30)
    ing.ingest("docs", [docs])
    ing.ingest("secret", [secret])


def search_team(**extra: Any) -> Any:
    script = [{"tool_calls": [call("knowledge_search", query="PDF support", k=2)]},
              {"tool_calls": [call("knowledge_search", query="launch code", namespace="secret")]},
              {"text": "done"}]
    return team([{"id": "lead", "knowledge": ["docs"]}],  # knowledge: gives it knowledge_search
                scripts={"lead": script}, knowledge={"embedder": "none"}, **extra)


def check_session(lake: Path, session_id: str) -> None:
    sql = (f"select type, tool, status, payload from events where session_id='{session_id}' and type in "
           "('knowledge.searched', 'guardrail.denied', 'tool.result', 'tool.error') order by ts, seq")
    evs = [{**r, "payload": json.loads(r["payload"])} for r in rows(lake, sql)]
    assert [(e["type"], e["tool"]) for e in evs] == [
        ("knowledge.searched", "knowledge_search"), ("tool.result", "knowledge_search"),
        ("guardrail.denied", "knowledge_search"), ("tool.error", "knowledge_search")]
    searched = evs[0]["payload"]
    assert (searched["namespaces"], searched["k"], searched["mode"], searched["reranked"]) == (["docs"], 2, "bm25", False)
    assert searched["hits"][0]["document"] == "handbook/install.md"
    assert searched["hits"][0]["chunk_id"] == "handbook/install.md#1"
    result = json.loads(evs[1]["payload"]["result"])["results"]
    assert result[0]["text"].startswith("## Extras") and result[0]["heading"] == "Install > Extras"
    assert {"namespace", "document", "chunk_id", "score", "text"} <= set(result[0])
    assert all(r["namespace"] != "secret" for r in result)
    denied = evs[2]["payload"]
    assert denied["reason"] == "knowledge_namespace" and evs[2]["status"] == "denied"
    assert "'secret' is not granted" in denied["error"] and "may search: docs" in denied["error"]
    assert "1234" not in evs[3]["payload"]["result"] and "not granted" in evs[3]["payload"]["result"]
