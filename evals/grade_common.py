"""What every grader shares: building a :class:`~troupe.evals.models.Grade` and quoting values in
its explanation."""

from __future__ import annotations

import json
from typing import Any

from troupe.evals.models import Grade

EPS = 1e-9
"""Slack when comparing a score with a threshold."""


def short(value: Any, limit: int = 120) -> str:
    """``value`` as text (JSON unless a string), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_grade(grader: str, explanation: str) -> Grade:
    """A 0 grade for a grader that could not judge (bad input, broken check)."""
    return Grade(grader=grader, score=0.0, passed=False, explanation=explanation)


def binary_grade(grader: str, ok: bool, explanation: str) -> Grade:
    """1 when ``ok``, else 0."""
    return Grade(grader=grader, score=1.0 if ok else 0.0, passed=ok, explanation=explanation)


__all__ = ["EPS", "binary_grade", "error_grade", "short"]
