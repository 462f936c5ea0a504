"""Graders of the reply's text: exact, contains, regex, and the reply as JSON (a value, a schema)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from troupe.evals.grade_common import binary_grade, error_grade, short
from troupe.evals.models import Grade


def grade_exact(reply: str | None, expected: str) -> Grade:
    got = (reply or "").strip()
    want = expected.strip()
    if got == want:
        return binary_grade("exact", True, "the reply equals the expected text")
    return binary_grade("exact", False, f"expected {short(want)!r}, got {short(got)!r}")


def grade_contains(reply: str | None, needles: Sequence[str]) -> Grade:
    hay = (reply or "").casefold()
    missing = [n for n in needles if n.casefold() not in hay]
    found = len(needles) - len(missing)
    score = found / len(needles) if needles else 1.0
    if not missing:
        return Grade(grader="contains", score=1.0, passed=True, explanation=f"the reply contains all {len(needles)}")
    return Grade(grader="contains", score=score, passed=False,
                 explanation=f"the reply lacks {len(missing)} of {len(needles)}: {[short(m, 60) for m in missing]}")


def grade_regex(reply: str | None, pattern: str) -> Grade:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        return error_grade("regex", f"invalid regular expression {pattern!r}: {e}")
    m = rx.search(reply or "")
    if m:
        return binary_grade("regex", True, f"matched {short(m.group(0), 60)!r}")
    return binary_grade("regex", False, f"no match for /{pattern}/ in {short(reply or '')!r}")


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_json_reply(reply: str | None) -> tuple[bool, Any, str]:
    """Parse a reply as JSON (a Markdown code fence around it is allowed): ``(ok, value, error)``."""
    text = (reply or "").strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1).strip()
    if not text:
        return False, None, "the reply is empty, not JSON"
    try:
        return True, json.loads(text), ""
    except json.JSONDecodeError as e:
        return False, None, f"the reply is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): {short(text)!r}"


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (``1 == 1.0``), but booleans only equal booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def grade_json(reply: str | None, expected: Any) -> Grade:
    ok, value, err = parse_json_reply(reply)
    if not ok:
        return error_grade("json", err)
    if json_equal(value, expected):
        return binary_grade("json", True, "the reply's JSON equals the expected value")
    return binary_grade("json", False, f"expected {short(expected)}, got {short(value)}")


def grade_json_schema(reply: str | None, schema: Mapping[str, Any]) -> Grade:
    from jsonschema import SchemaError, validators

    ok, value, err = parse_json_reply(reply)
    if not ok:
        return error_grade("json_schema", err)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        return error_grade("json_schema", f"the expected schema is invalid: {e.message}")
    errors = sorted(cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return binary_grade("json_schema", True, "the reply's JSON is valid under the schema")
    parts = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return binary_grade("json_schema", False, "schema violations: " + "; ".join(parts) + more)



__all__ = ["grade_contains", "grade_exact", "grade_json", "grade_json_schema", "grade_regex", "json_equal",
           "parse_json_reply"]
