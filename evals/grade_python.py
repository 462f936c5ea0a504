"""The Python grader: a ``package.module:function`` called with the sample."""

from __future__ import annotations

import inspect
from typing import Any

from troupe.evals.grade_common import EPS, binary_grade, error_grade
from troupe.evals.models import Grade, GradeInput


async def grade_python(inp: GradeInput, spec: str, pass_threshold: float = 1.0) -> Grade:
    """Call ``package.module:function`` with the sample; it returns a Grade, a bool or a float."""
    from troupe.runtime.errors import ConfigError
    from troupe.runtime.llm.function import load_function

    try:
        fn: Any = load_function(spec)
    except ConfigError as e:
        return error_grade("python", e.message)
    try:
        result = fn(inp)
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        return error_grade("python", f"{spec} raised {type(e).__name__}: {e}")
    if isinstance(result, Grade):
        return result.model_copy(update={"grader": "python"}) if result.grader != "python" else result
    if isinstance(result, bool):
        return binary_grade("python", result, f"{spec} returned {result}")
    if isinstance(result, (int, float)) and 0.0 <= float(result) <= 1.0:
        score = float(result)
        return Grade(grader="python", score=score, passed=score >= pass_threshold - EPS,
                     explanation=f"{spec} returned {score:g}")
    return error_grade("python", f"{spec} returned {result!r}; return a Grade, a bool or a float in [0, 1]")


__all__ = ["grade_python"]
