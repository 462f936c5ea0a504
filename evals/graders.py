"""Graders: one per :class:`~troupe.evals.models.Expect` field, combined into a sample's score.

Each grader returns a :class:`~troupe.evals.models.Grade` (a score in [0, 1], passed or not, and an
explanation a person can act on). :func:`grade` runs the graders a case asks for and combines
them as a weighted mean; a sample whose session did not complete scores 0.

The tool-call matcher follows the Berkeley Function Calling Leaderboard's AST checker: calls are
matched one to one in any order; each argument's value must equal one of its acceptable values
(ints and floats compare by value, strings ignore case, spaces and the punctuation ``,./-_*^``
as BFCL's ``standardize_string`` does, mappings and lists compare recursively, and a nested value
may itself be a list of acceptable values); ``""`` among the acceptable values means the argument
may be left out.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from troupe.evals.models import Case, Expect, ExpectedCall, Grade, GradeInput, GraderWeight, JudgeSpec, SqlCheck
from troupe.evals.suite import GRADERS
from troupe.runtime.config import ModelProfile

_EPS = 1e-9


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


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error(grader: str, explanation: str) -> Grade:
    return Grade(grader=grader, score=0.0, passed=False, explanation=explanation)


def _binary(grader: str, ok: bool, explanation: str) -> Grade:
    return Grade(grader=grader, score=1.0 if ok else 0.0, passed=ok, explanation=explanation)


# --- text graders ------------------------------------------------------------------------------
def grade_exact(reply: str | None, expected: str) -> Grade:
    got = (reply or "").strip()
    want = expected.strip()
    if got == want:
        return _binary("exact", True, "the reply equals the expected text")
    return _binary("exact", False, f"expected {_short(want)!r}, got {_short(got)!r}")


def grade_contains(reply: str | None, needles: Sequence[str]) -> Grade:
    hay = (reply or "").casefold()
    missing = [n for n in needles if n.casefold() not in hay]
    found = len(needles) - len(missing)
    score = found / len(needles) if needles else 1.0
    if not missing:
        return Grade(grader="contains", score=1.0, passed=True, explanation=f"the reply contains all {len(needles)}")
    return Grade(grader="contains", score=score, passed=False,
                 explanation=f"the reply lacks {len(missing)} of {len(needles)}: {[_short(m, 60) for m in missing]}")


def grade_regex(reply: str | None, pattern: str) -> Grade:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        return _error("regex", f"invalid regular expression {pattern!r}: {e}")
    m = rx.search(reply or "")
    if m:
        return _binary("regex", True, f"matched {_short(m.group(0), 60)!r}")
    return _binary("regex", False, f"no match for /{pattern}/ in {_short(reply or '')!r}")


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
        return False, None, f"the reply is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): {_short(text)!r}"


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
        return _error("json", err)
    if json_equal(value, expected):
        return _binary("json", True, "the reply's JSON equals the expected value")
    return _binary("json", False, f"expected {_short(expected)}, got {_short(value)}")


def grade_json_schema(reply: str | None, schema: Mapping[str, Any]) -> Grade:
    from jsonschema import SchemaError, validators

    ok, value, err = parse_json_reply(reply)
    if not ok:
        return _error("json_schema", err)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        return _error("json_schema", f"the expected schema is invalid: {e.message}")
    errors = sorted(cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return _binary("json_schema", True, "the reply's JSON is valid under the schema")
    parts = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return _binary("json_schema", False, "schema violations: " + "; ".join(parts) + more)


# --- tool calls (BFCL-style) ---------------------------------------------------------------------
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
            problems.append(f"unexpected argument {k!r}={_short(v, 60)}")
        elif not any_matches(v, expected.arguments[k]):
            problems.append(f"argument {k!r}={_short(v, 60)}, expected one of {_short(expected.arguments[k], 100)}")
    for k, acceptable in expected.arguments.items():
        if k not in args and "" not in [a for a in acceptable if isinstance(a, str)]:
            problems.append(f"missing argument {k!r} (expected one of {_short(acceptable, 100)})")
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
    return f"{call.get('name')}({_short(args, 100)})"


def grade_tool_calls(actual: Sequence[Mapping[str, Any]], expected: Sequence[ExpectedCall]) -> Grade:
    """Match the calls one to one, in any order; score = matched / max(expected, actual)."""
    if not expected and not actual:
        return _binary("tool_calls", True, "no tool calls expected and none made")
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
            notes.append(f"missing call {e.name} (expected arguments {_short(e.arguments, 100)})")
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


# --- SQL over the sample's events ---------------------------------------------------------------
def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _run_sql_check(lake: str, session_id: str, check: SqlCheck) -> tuple[float | None, str]:
    """``(score, note)``; score ``None`` means the check itself is broken."""
    import duckdb

    from troupe.runtime.eventlog.lake import connect

    con = connect(lake)
    try:
        con.sql("ALTER VIEW events RENAME TO lake_events")
        con.sql(f"CREATE VIEW events AS SELECT * FROM lake_events WHERE session_id = {_sql_literal(session_id)}")
        try:
            rel = con.sql(check.query)
            rows = rel.limit(2).fetchall() if rel is not None else None
        except duckdb.Error as e:
            return None, f"query failed: {e}"
    finally:
        con.close()
    if rows is None:
        return None, "the statement returned no result; write a SELECT that returns one row"
    if len(rows) != 1:
        return None, f"the query returned {'no' if not rows else 'more than one'} row; it must return exactly one"
    value = rows[0][0] if rows[0] else None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), f"{value}"
    if value is None:
        return None, "the first column is NULL; return a boolean or a number in [0, 1]"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"the first column is {value!r} ({type(value).__name__}); return a boolean or a number in [0, 1]"
    if isinstance(value, str) or not 0.0 <= number <= 1.0 or math.isnan(number):
        return None, f"the first column is {value!r}; return a boolean or a number in [0, 1]"
    return number, f"{number:g}"


def grade_sql(inp: GradeInput, checks: Sequence[SqlCheck], pass_threshold: float = 1.0) -> Grade:
    """Each check runs over the sample's own events; the grade is their mean, passed when every
    check passes (a boolean true, or a number reaching ``pass_threshold``)."""
    if not checks:
        return _binary("sql", True, "no checks")
    scores = []
    notes = []
    all_pass = True
    for check in checks:
        try:
            score, note = _run_sql_check(inp.lake, inp.session_id, check)
        except Exception as e:  # the lake itself could not be opened
            score, note = None, f"{type(e).__name__}: {e}"
        if score is None:
            all_pass = False
            scores.append(0.0)
            notes.append(f"{check.name}: error: {note} (query: {_short(check.query, 200)})")
        else:
            scores.append(score)
            passed = score >= pass_threshold - _EPS
            all_pass = all_pass and passed
            notes.append(f"{check.name}: {'pass' if passed else 'fail'} ({note})")
    return Grade(grader="sql", score=sum(scores) / len(scores), passed=all_pass, explanation="; ".join(notes))


# --- python ------------------------------------------------------------------------------------
async def grade_python(inp: GradeInput, spec: str, pass_threshold: float = 1.0) -> Grade:
    """Call ``package.module:function`` with the sample; it returns a Grade, a bool or a float."""
    from troupe.runtime.errors import ConfigError
    from troupe.runtime.llm.function import load_function

    try:
        fn: Any = load_function(spec)
    except ConfigError as e:
        return _error("python", e.message)
    try:
        result = fn(inp)
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        return _error("python", f"{spec} raised {type(e).__name__}: {e}")
    if isinstance(result, Grade):
        return result.model_copy(update={"grader": "python"}) if result.grader != "python" else result
    if isinstance(result, bool):
        return _binary("python", result, f"{spec} returned {result}")
    if isinstance(result, (int, float)) and 0.0 <= float(result) <= 1.0:
        score = float(result)
        return Grade(grader="python", score=score, passed=score >= pass_threshold - _EPS,
                     explanation=f"{spec} returned {score:g}")
    return _error("python", f"{spec} returned {result!r}; return a Grade, a bool or a float in [0, 1]")


# --- judge -------------------------------------------------------------------------------------
JUDGE_SYSTEM = (
    "You are a strict grader. You score an assistant's reply against a rubric on a scale from 0 "
    "(fails the rubric entirely) to 10 (fully meets it). Start your answer with the score as a "
    "number from 0 to 10, then at most one sentence of reasons. Example: '7 - correct, but misses the unit.'"
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _case_input(case: Case) -> str:
    if isinstance(case.input, str):
        return case.input
    return "\n".join(f"{t.role}: {t.content}" for t in case.input)


def judge_prompt(case: Case, reply: str | None, spec: JudgeSpec) -> str:
    return (
        f"Rubric:\n{spec.rubric}\n\n"
        f"The user's request:\n{_case_input(case)}\n\n"
        f"The assistant's reply:\n{reply or '(no reply)'}\n\n"
        "Score the reply from 0 to 10 against the rubric. Answer with the number first."
    )


def parse_judge_score(text: str) -> float | None:
    """The first number in ``text`` as a score in [0, 1] (``7`` -> 0.7, clamped), or ``None``."""
    m = _NUMBER.search(text or "")
    if m is None:
        return None
    value = float(m.group(0))
    return min(10.0, max(0.0, value)) / 10.0


async def grade_judge(inp: GradeInput, spec: JudgeSpec, models: Mapping[str, ModelProfile] | None) -> Grade:
    from troupe.runtime.errors import TroupeError
    from troupe.runtime.llm.registry import build_client
    from troupe.runtime.llm.types import ChatMessage, LLMRequest

    if not models:
        return _error("judge", f"no model profiles were given, so judge profile {spec.profile!r} cannot be found; "
                               "pass the team's models to grade()")
    try:
        client = build_client(spec.profile, models, agent="judge")
    except TroupeError as e:
        return _error("judge", e.message)
    request = LLMRequest(
        messages=[ChatMessage(role="system", content=JUDGE_SYSTEM),
                  ChatMessage(role="user", content=judge_prompt(inp.case, inp.reply, spec))],
        temperature=0.0,
        max_tokens=200,
    )
    try:
        response = await client.complete(request)
    except Exception as e:
        return _error("judge", f"the judge model ({spec.profile!r}) failed: {type(e).__name__}: {e}")
    finally:
        try:
            await client.aclose()
        except Exception:
            pass
    text = (response.text or "").strip()
    score = parse_judge_score(text)
    if score is None:
        return _error("judge", f"the judge's answer has no score: {_short(text, 200)!r}")
    return Grade(grader="judge", score=score, passed=score >= spec.pass_score - _EPS,
                 explanation=f"judge {spec.profile!r}: {_short(text, 300)}")


# --- combining ---------------------------------------------------------------------------------
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
        return 0.0, False, [_error("status", f"the session ended with status {inp.status!r}, not 'completed'")]
    grades = await run_graders(inp, pass_threshold=pass_threshold, models=models)
    if not grades:
        return 1.0, True, []
    score = min(1.0, max(0.0, combine(grades, weights)))
    return score, score >= pass_threshold - _EPS, grades


__all__ = [
    "JUDGE_SYSTEM",
    "any_matches",
    "call_mismatches",
    "combine",
    "grade",
    "grade_contains",
    "grade_exact",
    "grade_json",
    "grade_json_schema",
    "grade_judge",
    "grade_python",
    "grade_regex",
    "grade_sql",
    "grade_tool_calls",
    "graders_for",
    "json_equal",
    "judge_prompt",
    "normalize_string",
    "oracle_arguments",
    "parse_judge_score",
    "parse_json_reply",
    "run_graders",
    "value_matches",
]
