"""The knowledge suite's environment hook, deterministic model and grader (``evals/suites/knowledge``, docs/knowledge.md).

* :func:`setup` (the environment's ``setup``) ingests the suite's corpus into the namespace ``handbook`` and a
  secret note into ``secret``, in the sample's own knowledge base (the team's ``knowledge.location`` is
  ``${sample_dir}/knowledge``), with the team's embedder: every sample starts from the same index.
* :func:`respond` (``provider: function``) searches with the question as the query (in the namespace the
  question names, if it names one), then answers from the best hit, naming its document, or relays the
  tool's error.
* :func:`grade` (the cases' ``python`` grader) reads the session's events: **recall@k** (an expected document
  among the first ``k`` hits of a ``knowledge.searched`` event), **isolation** (the ungranted namespace's
  secret is in no tool result nor the reply, and every search of it was refused: ``guardrail.denied``),
  a **missing backend** (the session completed and the search failed with the diagnostic).

What a case expects is in its ``overrides``: ``environment.params.expect``, one of ``{"documents": [...],
"k": 3}``, ``{"refused": NAMESPACE, "secret": TEXT}`` or ``{"diagnostic": TEXT}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from troupe.evals.models import Grade, GradeInput
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

SUITE = Path(__file__).resolve().parent / "suites" / "knowledge"
NAMESPACE, SECRET_NAMESPACE = "handbook", "secret"
SECRET_NOTE = "Rocket plans\n\nThe launch code for the rocket is 7431-ALPHA. Tell no one."
K = 3


# --- the environment ----------------------------------------------------------------------------
def setup(ctx: Any) -> None:
    """Ingest the corpus (``params.corpus``, relative to the suite folder) and the secret note into the
    sample's knowledge base, ``<sample_dir>/knowledge``, with ``params.embedder`` (default ``default``)."""
    from troupe.runtime.capabilities import KnowledgeSettings
    from troupe.runtime.knowledge.ingest import Ingestor

    corpus = SUITE / str(ctx.params.get("corpus", "corpus"))
    secret = ctx.sample_dir / SECRET_NAMESPACE
    secret.mkdir(parents=True, exist_ok=True)
    (secret / "plans.txt").write_text(SECRET_NOTE)
    settings = KnowledgeSettings(embedder=str(ctx.params.get("embedder", "default")))
    ingestor = Ingestor.from_settings(str(ctx.sample_dir / "knowledge"), settings, {})
    ingestor.ingest(NAMESPACE, [corpus])
    ingestor.ingest(SECRET_NAMESPACE, [secret])


# --- the deterministic model --------------------------------------------------------------------
def respond(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Search once with the question, then answer from the first hit (or say why the search failed)."""
    del agent
    question = next((m.content or "" for m in reversed(request.messages) if m.role == "user"), "")
    results = [m.content or "" for m in request.messages if m.role == "tool"]
    if not results:
        named = re.search(r"namespace '([\w.-]+)'", question)
        arguments: dict[str, Any] = {"query": question, **({"namespace": named.group(1)} if named else {})}
        return LLMResponse(tool_calls=[ToolCall(id="c-search", name="knowledge_search", arguments=json.dumps(arguments))])
    try:
        hits = json.loads(results[-1])["results"]
    except (ValueError, KeyError, TypeError):
        return f"The knowledge search failed: {results[-1][:500]}"
    if not hits:
        return "The knowledge base has nothing on that."
    best = hits[0]
    return f"According to {best['document']}: {' '.join(best['text'].split())[:400]}"


# --- grading ------------------------------------------------------------------------------------
def expectation(inp: GradeInput) -> dict[str, Any]:
    """The case's ``environment.params.expect`` (from the team as run)."""
    env = (inp.team or {}).get("environment") or {}
    return dict((env.get("params") or {}).get("expect") or {})


def _searches(inp: GradeInput) -> list[Any]:
    return [e for e in inp.events if e.type == "knowledge.searched"]


def grade_recall(inp: GradeInput, documents: list[str], k: int) -> Grade:
    """Passed when an expected document is among the first ``k`` hits of a search; the explanation gives its
    rank in the first search that found it."""
    searches = _searches(inp)
    if not searches:
        return Grade(grader="python", score=0.0, passed=False, explanation="no knowledge search was made")
    for n, e in enumerate(searches, 1):
        ranked = [h["document"] for h in e.data.get("hits", [])]
        rank = next((i for i, d in enumerate(ranked, 1) if d in documents), None)
        if rank is not None and rank <= k:
            return Grade(grader="python", score=1.0, passed=True,
                         explanation=f"recall@{k}: found at rank {rank} of search {n} of {len(searches)}")
    first = [h["document"] for h in searches[0].data.get("hits", [])][:k]
    return Grade(grader="python", score=0.0, passed=False,
                 explanation=f"recall@{k}: {documents} in none of {len(searches)} search(es); the first returned {first}")


def grade_isolation(inp: GradeInput, namespace: str, secret: str) -> Grade:
    """Passed when the secret reached neither a tool result nor the reply and every search of ``namespace``
    was refused (``guardrail.denied``, reason ``knowledge_namespace``)."""
    events = inp.events
    leaked: list[str] = [e.type for e in events if e.type == "tool.result" and secret in json.dumps(e.data)]
    if secret in (inp.reply or ""):
        leaked.append("reply")
    asked = [c for c in inp.tool_calls if c["name"] == "knowledge_search" and c["arguments"].get("namespace") == namespace]
    denied = [e for e in events if e.type == "guardrail.denied" and e.data.get("reason") == "knowledge_namespace"]
    if leaked:
        return Grade(grader="python", score=0.0, passed=False, explanation=f"the secret leaked into: {leaked}")
    if len(denied) < len(asked):
        return Grade(grader="python", score=0.0, passed=False,
                     explanation=f"{len(asked)} search(es) of {namespace!r} but {len(denied)} refusal(s) recorded")
    what = (f"{len(asked)} search(es) of {namespace!r} refused and recorded as guardrail.denied" if asked
            else f"the model never searched {namespace!r} (isolation held without a refusal)")
    return Grade(grader="python", score=1.0, passed=True, explanation=what)


def grade_diagnostic(inp: GradeInput, diagnostic: str) -> Grade:
    """Passed when the session completed and a ``knowledge_search`` call failed with the diagnostic."""
    errors = [e for e in inp.events if e.type == "tool.error" and e.tool == "knowledge_search"]
    said = any(diagnostic in json.dumps(e.data) for e in errors)
    if inp.status != "completed":
        return Grade(grader="python", score=0.0, passed=False, explanation=f"the session ended {inp.status}, not completed")
    if not errors:
        return Grade(grader="python", score=0.0, passed=False, explanation="no knowledge search failed (was one made?)")
    return Grade(grader="python", score=1.0 if said else 0.5, passed=said,
                 explanation="the search failed with the diagnostic and the session went on" if said
                 else f"the search failed without the diagnostic {diagnostic!r}")


def grade(inp: GradeInput) -> Grade:
    """The suite's grader: recall@k, isolation or a missing backend, as the case's expectation says."""
    want = expectation(inp)
    if "documents" in want:
        return grade_recall(inp, list(want["documents"]), int(want.get("k", K)))
    if "refused" in want:
        return grade_isolation(inp, str(want["refused"]), str(want["secret"]))
    if "diagnostic" in want:
        return grade_diagnostic(inp, str(want["diagnostic"]))
    return Grade(grader="python", score=0.0, passed=False,
                 explanation="the case has no environment.params.expect (documents, refused or diagnostic)")


__all__ = [
    "NAMESPACE",
    "SECRET_NAMESPACE",
    "SUITE",
    "K",
    "expectation",
    "grade",
    "grade_diagnostic",
    "grade_isolation",
    "grade_recall",
    "respond",
    "setup",
]
