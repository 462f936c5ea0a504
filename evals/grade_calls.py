"""The tool-call grader, after the Berkeley Function Calling Leaderboard's AST checker.

Calls are matched one to one in any order; each argument's value must equal one of its acceptable
values (ints and floats compare by value, strings ignore case, spaces and the punctuation
``,./-_*^`` as BFCL's ``standardize_string`` does, mappings and lists compare recursively, and a
nested value may itself be a list of acceptable values); ``""`` among the acceptable values means
the argument may be left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from troupe.evals.grade_common import binary_grade, short
from troupe.evals.models import ExpectedCall, Grade

_BFCL_PUNCT = re.compile(r"[ ,./\-_*^]")


def normalize_string(text: str) -> str:
    """BFCL's ``standardize_string``: no spaces or ``,./-_*^``, lower case, ``'`` as ``"``."""
    return _BFCL_PUNCT.sub("", text.strip()).casefold().replace("'", '"')


def value_matches(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` equals the single acceptable value ``expected``.

    Numbers compare by value (booleans only with booleans), strings with :func:`normalize_string`,
    lists element by element, mappings key by key; inside a list or a mapping an expected value
    may be a list of acceptable values (``""`` among them lets a mapping leave the key out).
    """
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return normalize_string(actual) == normalize_string(expected)
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(_nested_matches(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, dict) and isinstance(actual, dict):
        if any(k not in expected for k in actual):
            return False
        for k, e in expected.items():
            if k not in actual:
                if not _optional(e):
                    return False
            elif not _nested_matches(actual[k], e):
                return False
        return True
    return expected is None and actual is None


def _optional(expected: Any) -> bool:
    return expected == "" or (isinstance(expected, list) and any(x == "" for x in expected if isinstance(x, str)))


def _nested_matches(actual: Any, expected: Any) -> bool:
    """A nested expected value is either the value itself or (BFCL) a list of acceptable values."""
    if value_matches(actual, expected):
        return True
    return isinstance(expected, list) and any(value_matches(actual, e) for e in expected if e != "")


def any_matches(actual: Any, acceptable: Sequence[Any]) -> bool:
    """Whether ``actual`` equals one of the ``acceptable`` values."""
    return any(value_matches(actual, e) for e in acceptable)


def _call_args(call: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    args = call.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError as e:
            return None, f"arguments are not valid JSON ({e.msg})"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, f"arguments are a {type(args).__name__}, not an object"
    return args, ""


def call_mismatches(actual: Mapping[str, Any], expected: ExpectedCall) -> list[str]:
    """Why ``actual`` (``{"name", "arguments"}``) is not ``expected``; empty when it matches."""
    name = actual.get("name")
    if name != expected.name:
        return [f"name {name!r} is not {expected.name!r}"]
    args, err = _call_args(actual)
    if args is None:
        return [err]
    problems = []
    for k, v in args.items():
        if k not in expected.arguments:
            problems.append(f"unexpected argument {k!r}={short(v, 60)}")
        elif not any_matches(v, expected.arguments[k]):
            problems.append(f"argument {k!r}={short(v, 60)}, expected one of {short(expected.arguments[k], 100)}")
    for k, acceptable in expected.arguments.items():
        if k not in args and "" not in [a for a in acceptable if isinstance(a, str)]:
            problems.append(f"missing argument {k!r} (expected one of {short(acceptable, 100)})")
    return problems


def _max_matching(ok: list[list[bool]], n_actual: int) -> list[int]:
    """Maximum bipartite matching (Kuhn): for each expected call, the actual call it matched, or -1."""
    owner = [-1] * n_actual

    def augment(i: int, seen: list[bool]) -> bool:
        for j in range(n_actual):
            if ok[i][j] and not seen[j]:
                seen[j] = True
                if owner[j] == -1 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(ok)):
        augment(i, [False] * n_actual)
    match = [-1] * len(ok)
    for j, i in enumerate(owner):
        if i >= 0:
            match[i] = j
    return match


def _fmt_call(call: Mapping[str, Any]) -> str:
    args = call.get("arguments", {})
    return f"{call.get('name')}({short(args, 100)})"


def grade_tool_calls(actual: Sequence[Mapping[str, Any]], expected: Sequence[ExpectedCall]) -> Grade:
    """Match the calls one to one, in any order; score = matched / max(expected, actual)."""
    if not expected and not actual:
        return binary_grade("tool_calls", True, "no tool calls expected and none made")
    ok = [[not call_mismatches(a, e) for a in actual] for e in expected]
    match = _max_matching(ok, len(actual))
    matched = sum(1 for j in match if j >= 0)
    score = matched / max(len(expected), len(actual))
    if matched == len(expected) == len(actual):
        return Grade(grader="tool_calls", score=1.0, passed=True, explanation=f"all {matched} expected call(s) matched")
    used = {j for j in match if j >= 0}
    spare = [j for j in range(len(actual)) if j not in used]
    notes = []
    for i, e in enumerate(expected):
        if match[i] >= 0:
            continue
        same = [j for j in spare if actual[j].get("name") == e.name]
        if same:
            j = min(same, key=lambda j: len(call_mismatches(actual[j], e)))
            spare.remove(j)
            notes.append(f"call {e.name}: " + "; ".join(call_mismatches(actual[j], e)))
        else:
            notes.append(f"missing call {e.name} (expected arguments {short(e.arguments, 100)})")
    notes.extend(f"unexpected call {_fmt_call(actual[j])}" for j in spare)
    head = f"{matched} of {len(expected)} expected call(s) matched ({len(actual)} made)"
    return Grade(grader="tool_calls", score=score, passed=False, explanation=head + ": " + " | ".join(notes))


def oracle_arguments(call: ExpectedCall) -> dict[str, Any]:
    """Arguments that match ``call``: each argument's first acceptable value, optional ones (first
    value ``""``) left out, and nested BFCL acceptable-value lists resolved the same way."""

    def first(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if isinstance(v, list):
                    if not v or v[0] == "":
                        continue
                    out[k] = first(v[0])
                else:
                    out[k] = first(v)
            return out
        if isinstance(value, list):
            return [first(x) for x in value]
        return value

    return {k: first(v[0]) for k, v in call.arguments.items() if v and v[0] != ""}


__all__ = ["any_matches", "call_mismatches", "grade_tool_calls", "normalize_string", "oracle_arguments",
           "value_matches"]
