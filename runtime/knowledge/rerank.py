"""The optional rerank (``knowledge: {rerank: true}``): a model-free rescoring of the fused candidates.

Reciprocal-rank fusion only sees ranks; the reranker looks at the text of the ``rerank_depth`` best
fused candidates again and scores each by

* **coverage** (weight 0.45): the share of the query's distinct terms the chunk holds (heading included),
* **proximity** (weight 0.2): the share of the query's adjacent term pairs that appear adjacent in the chunk,
* **fusion** (weight 0.35): its fused score, scaled so the best candidate has 1.

So a chunk that answers every part of a question climbs above one that matched a single rare word
strongly. It needs no model and costs well under a millisecond per candidate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from troupe.runtime.knowledge.bm25 import tokenize

WEIGHTS = (0.45, 0.2, 0.35)


def _pairs(tokens: Sequence[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(tokens))


def rerank(query: str, candidates: Sequence[tuple[str, str, float]]) -> list[tuple[str, float]]:
    """``candidates`` as ``(id, text, fused score)``; returns ``(id, rerank score)``, best first."""
    q = tokenize(query)
    terms, pairs = set(q), _pairs(q)
    top = max((s for _, _, s in candidates), default=0.0) or 1.0
    out = []
    for cid, text, fused in candidates:
        tokens = tokenize(text)
        have = set(tokens)
        coverage = len(terms & have) / len(terms) if terms else 0.0
        proximity = len(pairs & _pairs(tokens)) / len(pairs) if pairs else coverage
        out.append((cid, WEIGHTS[0] * coverage + WEIGHTS[1] * proximity + WEIGHTS[2] * fused / top))
    return sorted(out, key=lambda kv: -kv[1])


__all__ = ["WEIGHTS", "rerank"]
