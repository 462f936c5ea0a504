"""The knowledge eval suite (evals/suites/knowledge): recall@k over its corpus, namespace isolation, a missing backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from troupe.runtime.capabilities import KnowledgeSettings
from troupe.runtime.config import AgentSpec
from troupe.runtime.errors import PermissionDeniedError, ToolUnavailableError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.knowledge.access import KnowledgeAccess
from troupe.runtime.knowledge.embedding import get_embedder
from troupe.runtime.knowledge.ingest import Ingestor
from troupe.tools.builtins.knowledge import knowledge_search
from troupe.tools.context import ToolContext

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suites" / "knowledge"
K = 3


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SUITE / "cases.jsonl").read_text().splitlines() if line.strip()]


def _ctx(access: KnowledgeAccess) -> ToolContext:
    return ToolContext(session_id=SessionId("s"), run_id=RunId("r"), agent=AgentId("a"), services=None,  # type: ignore[arg-type]
                       spec=AgentSpec(id="a", knowledge=["handbook"]), tool_call_id="c", knowledge=access,
                       emit=lambda *a, **f: None)


async def test_the_suite_on_bm25_recall_isolation_and_a_missing_backend(tmp_path: Path) -> None:
    root = str(tmp_path / "knowledge")
    Ingestor(root, None).ingest("handbook", [SUITE / "corpus"])
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "plans.txt").write_text("The launch code is 1234.")
    Ingestor(root, None).ingest("secret", [tmp_path / "secret"])
    found = total = 0
    for case in _cases():
        settings = KnowledgeSettings(embedder=case.get("embedder", "none"), top_k=K)
        access = KnowledgeAccess(root, settings, make_embedder=lambda s=settings: get_embedder(s, {}))
        args = {"query": case["input"], "namespace": case["namespace"]}
        expect = case["expect"]
        if "refused" in expect:
            with pytest.raises(PermissionDeniedError, match="not granted"):
                await knowledge_search.call_validated(args, _ctx(access))
        elif "diagnostic" in expect:
            with pytest.raises(ToolUnavailableError, match=expect["diagnostic"]):
                await knowledge_search.call_validated(args, _ctx(access))
        else:
            out = await knowledge_search.call_validated(args, _ctx(access))
            docs = [r["document"] for r in out["results"]]
            total += 1
            found += any(d in docs for d in expect["documents"])
    assert total == 7
    assert found == total, f"recall@{K} on BM25 {found}/{total}"  # measured: 7/7 at k=1 too
