"""Grading a sample: the graders its case's :class:`~troupe.evals.models.Expect` asks for, combined
into one score.

Each grader returns a :class:`~troupe.evals.models.Grade` (a score in [0, 1], passed or not, and an
explanation a person can act on); they live beside this module, one family each:
:mod:`~troupe.evals.grade_text` (exact, contains, regex, json, json_schema),
:mod:`~troupe.evals.grade_calls` (tool_calls, BFCL-style), :mod:`~troupe.evals.grade_sql`,
:mod:`~troupe.evals.grade_python` and :mod:`~troupe.evals.grade_judge`. :func:`grade` runs the ones a
case asks for and combines them as a weighted mean; a sample whose session did not complete scores 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from troupe.evals.grade_calls import grade_tool_calls
from troupe.evals.grade_common import EPS, error_grade
from troupe.evals.grade_judge import grade_judge
from troupe.evals.grade_python import grade_python
from troupe.evals.grade_sql import grade_sql
from troupe.evals.grade_text import grade_contains, grade_exact, grade_json, grade_json_schema, grade_regex
from troupe.evals.models import Expect, Grade, GradeInput, GraderWeight
from troupe.evals.suite import GRADERS
from troupe.runtime.config import ModelProfile


def graders_for(expect: Expect) -> list[str]:
    """The graders ``expect`` asks for, in :data:`~troupe.evals.suite.GRADERS` order."""
    present = {
        "exact": expect.exact is not None,
        "contains": expect.contains is not None,
        "regex": expect.regex is not None,
        "json": expect.json_value is not None or "json_value" in expect.model_fields_set,
        "json_schema": expect.json_schema is not None,
        "tool_calls": expect.tool_calls is not None,
        "sql": expect.sql is not None,
        "python": expect.python is not None,
        "judge": expect.judge is not None,
    }
    return [g for g in GRADERS if present[g]]


async def run_graders(inp: GradeInput, *, pass_threshold: float = 1.0,
                      models: Mapping[str, ModelProfile] | None = None) -> list[Grade]:
    """Every grader the case's ``expect`` asks for, in :data:`~troupe.evals.suite.GRADERS` order."""
    expect = inp.case.expect
    grades: list[Grade] = []
    for name in graders_for(expect):
        if name == "exact":
            grades.append(grade_exact(inp.reply, expect.exact or ""))
        elif name == "contains":
            grades.append(grade_contains(inp.reply, expect.contains or []))
        elif name == "regex":
            grades.append(grade_regex(inp.reply, expect.regex or ""))
        elif name == "json":
            grades.append(grade_json(inp.reply, expect.json_value))
        elif name == "json_schema":
            grades.append(grade_json_schema(inp.reply, expect.json_schema or {}))
        elif name == "tool_calls":
            grades.append(grade_tool_calls(inp.tool_calls, expect.tool_calls or []))
        elif name == "sql":
            grades.append(await asyncio.to_thread(grade_sql, inp, expect.sql or [], pass_threshold))
        elif name == "python":
            grades.append(await grade_python(inp, expect.python or "", pass_threshold))
        elif name == "judge":
            assert expect.judge is not None
            grades.append(await grade_judge(inp, expect.judge, models))
    return grades


def combine(grades: Sequence[Grade], weights: Sequence[GraderWeight]) -> float:
    """Weighted mean of the grades' scores (a grader not in ``weights`` weighs 1); 1.0 when no
    grade carries weight."""
    table = {w.grader: w.weight for w in weights}
    total = sum(table.get(g.grader, 1.0) for g in grades)
    if total <= 0:
        return 1.0
    return sum(table.get(g.grader, 1.0) * g.score for g in grades) / total


async def grade(
    inp: GradeInput,
    *,
    weights: list[GraderWeight],
    pass_threshold: float,
    models: dict[str, ModelProfile] | None = None,
) -> tuple[float, bool, list[Grade]]:
    """Grade one sample: ``(score, passed, grades)``.

    A sample whose session did not complete scores 0 and fails (its only grade says why). A
    completed sample with no graders scores 1. Otherwise the score is the weighted mean of its
    graders' scores and the sample passes when it reaches ``pass_threshold``.
    """
    if inp.status != "completed":
        return 0.0, False, [error_grade("status", f"the session ended with status {inp.status!r}, not 'completed'")]
    grades = await run_graders(inp, pass_threshold=pass_threshold, models=models)
    if not grades:
        return 1.0, True, []
    score = min(1.0, max(0.0, combine(grades, weights)))
    return score, score >= pass_threshold - EPS, grades


__all__ = ["combine", "grade", "graders_for", "run_graders"]
