"""The knowledge suite (evals/suites/knowledge) through the eval harness, in process, on its deterministic model:
recall@3 over the handbook, the ungranted namespace refused and recorded, a missing backend a diagnostic; and the
grader fails what it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from troupe.evals.models import Case, GradeInput
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query

SUITE = REPO / "evals" / "suites" / "knowledge"


async def test_the_knowledge_suite_runs_through_the_harness(troupe: Troupe, lake: Path) -> None:
    suite = load_suite(SUITE)
    kinds = {c.id: next(t for t in c.tags if t != "knowledge") for c in suite.cases}
    assert sorted(kinds.values()).count("recall") == 15 and len(kinds) == 18
    sweep = Sweep(troupe, suite, concurrency=4)
    await sweep.run()
    rows = {r["case_id"]: r for r in results_table(lake, sweep.run_id).to_pylist()}
    assert {c: r["status"] for c, r in rows.items()} == dict.fromkeys(kinds, "completed"), rows
    why = {c: " ".join(g["explanation"] for g in json.loads(r["grades"])) for c, r in rows.items()}
    # Measured on the default embedder (hybrid): every question's document within the first 3 hits.
    assert {c: why[c] for c, r in rows.items() if not r["passed"]} == {}
    assert "refused and recorded as guardrail.denied" in why["isolation"]
    assert "the search failed with the diagnostic" in why["missing_embedder_profile"]
    sid = rows["isolation"]["session_id"]
    denied = query(lake, "select json_extract_string(payload, '$.reason') r from events "
                         f"where type = 'guardrail.denied' and session_id = '{sid}'").to_pylist()
    assert denied == [{"r": "knowledge_namespace"}]
    modes = query(lake, "select distinct json_extract_string(payload, '$.mode') m from events "
                        f"where type = 'knowledge.searched' and run_id = '{sweep.run_id}'").to_pylist()
    assert modes == [{"m": "hybrid"}]


def _input(expect: dict[str, Any], events: list[Any], *, reply: str = "", status: str = "completed",
           calls: list[dict[str, Any]] | None = None) -> GradeInput:
    inp = GradeInput(case=Case(id="c", input="q"), reply=reply, status=status, session_id="s-1", run_id="r-1",
                     lake="/nowhere", tool_calls=calls or [], team={"environment": {"params": {"expect": expect}}})
    return inp.with_events(events)


def test_the_grader_fails_a_miss_a_leak_an_unrecorded_refusal_and_a_crash() -> None:
    from troupe.evals.knowledge_suite import grade
    from troupe.runtime.events import GuardrailDeniedPayload, make_event
    from troupe.runtime.events.knowledge import KnowledgeHitRecord, KnowledgeSearchedPayload

    def searched(*docs: str) -> Any:
        hits = [KnowledgeHitRecord(namespace="handbook", document=d, chunk_id=f"{d}#0", score=1.0) for d in docs]
        return make_event(KnowledgeSearchedPayload(id="c", query="q", namespaces=["handbook"], k=3, mode="bm25",
                                                   reranked=False, hits=hits), run_id="r-1", session_id="s-1", seq=1)

    want = {"documents": ["corpus/a.md"], "k": 3}
    assert grade(_input(want, [searched("corpus/b.md", "corpus/c.md", "corpus/a.md")])).passed
    miss = grade(_input(want, [searched("corpus/b.md", "corpus/c.md", "corpus/d.md", "corpus/a.md")]))
    assert not miss.passed and "in none of 1 search" in miss.explanation
    assert not grade(_input(want, [])).passed
    secret = {"refused": "secret", "secret": "7431-ALPHA"}
    asked = [{"name": "knowledge_search", "arguments": {"query": "code", "namespace": "secret"}}]
    denied = make_event(GuardrailDeniedPayload(id="c", reason="knowledge_namespace", error="not granted"),
                        run_id="r-1", session_id="s-1", seq=2)
    assert grade(_input(secret, [denied], calls=asked)).passed
    assert not grade(_input(secret, [], calls=asked)).passed  # searched but no refusal recorded
    assert not grade(_input(secret, [denied], calls=asked, reply="It is 7431-ALPHA.")).passed
    crashed = grade(_input({"diagnostic": "neither"}, [], status="failed"))
    assert not crashed.passed and "failed" in crashed.explanation
