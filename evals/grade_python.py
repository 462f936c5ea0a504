"""The Python grader: a ``package.module:function`` called with the sample.

The function takes one argument, the :class:`~troupe.evals.models.GradeInput`, and returns a
:class:`~troupe.evals.models.Grade`, a bool or a float in [0, 1]. It may be ``async`` (awaited on
the sweep's loop); a plain function runs in a worker thread, so a slow one never holds up the
sweep's other samples. :func:`check_python_grader` imports it and checks its signature when the
suite loads, before any sample runs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from troupe.evals.grade_common import EPS, binary_grade, error_grade
from troupe.evals.models import Grade, GradeInput
from troupe.runtime.errors import ConfigError


def check_python_grader(spec: str, *, path: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``package.module:function`` (``path`` first on ``sys.path``) and check that it can be
    called with one argument; raises :class:`ConfigError` saying what is wrong."""
    from troupe.runtime.llm.function import load_function

    fn: Any = load_function(spec, path=path)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # a builtin or C callable without a signature: trust it
    try:
        sig.bind(None)
    except TypeError:
        raise ConfigError(f"python grader {spec!r} must take one argument (the sample, a GradeInput); its "
                          f"signature is {fn.__name__ if hasattr(fn, '__name__') else spec}{sig}", spec=spec) from None
    return fn


async def grade_python(inp: GradeInput, spec: str, pass_threshold: float = 1.0) -> Grade:
    """Call ``package.module:function`` with the sample; it returns a Grade, a bool or a float."""
    from troupe.runtime.llm.function import load_function

    try:
        fn: Any = load_function(spec)
    except ConfigError as e:
        return error_grade("python", e.message)
    try:
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
            result = await fn(inp)
        else:
            result = await asyncio.to_thread(fn, inp)
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


__all__ = ["check_python_grader", "grade_python"]
