"""Graders: each one passing and failing, the BFCL-style tool-call matcher, SQL over a real lake,
Python graders, an LLM judge on deterministic models, and how grades combine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from troupe.evals.grade_calls import grade_tool_calls, normalize_string, oracle_arguments, value_matches
from troupe.evals.grade_judge import parse_judge_score
from troupe.evals.grade_text import grade_contains, grade_exact, grade_json, grade_json_schema, grade_regex
from troupe.evals.graders import grade, graders_for
from troupe.evals.models import Case, Expect, ExpectedCall, Grade, GradeInput, GraderWeight
from troupe.runtime.config import ModelProfile
from troupe.runtime.eventlog.lake import LakeWriter
from troupe.runtime.events import events_to_columns, make_event
from troupe.runtime.llm.types import LLMRequest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _inp(expect: dict[str, Any] | None = None, *, reply: str | None = "hello", status: str = "completed",
         calls: list[dict[str, Any]] | None = None, lake: str = "/nonexistent", session: str = "s1") -> GradeInput:
    case = Case.model_validate({"id": "c", "input": "say hello", "expect": expect or {}})
    return GradeInput(case=case, reply=reply, status=status, session_id=session, run_id="r1", lake=lake,
                      tool_calls=calls or [])


# --- text graders --------------------------------------------------------------------------------
def test_exact() -> None:
    assert grade_exact("  42\n", "42").passed
    g = grade_exact("41", "42")
    assert not g.passed and g.score == 0 and "expected '42', got '41'" in g.explanation
    assert not grade_exact(None, "42").passed


def test_contains_is_case_insensitive_with_partial_credit() -> None:
    assert grade_contains("Paris is the CAPITAL", ["paris", "capital"]).score == 1.0
    g = grade_contains("Paris", ["paris", "France"])
    assert (g.score, g.passed) == (0.5, False) and "France" in g.explanation


def test_regex() -> None:
    assert grade_regex("order #1234 shipped", r"#\d{4}").passed
    g = grade_regex("no number", r"#\d+")
    assert not g.passed and "no match" in g.explanation
    assert "invalid regular expression" in grade_regex("x", "(").explanation


def test_json_equality_and_fences() -> None:
    assert grade_json('{"a": 1, "b": [true]}', {"b": [True], "a": 1.0}).passed
    assert grade_json('```json\n{"a": 1}\n```', {"a": 1}).passed
    g = grade_json('{"a": 2}', {"a": 1})
    assert not g.passed and 'expected {"a": 1}, got {"a": 2}' in g.explanation
    assert not grade_json('{"a": 1}', {"a": True}).passed  # booleans are not numbers
    g = grade_json("not json", {"a": 1})
    assert g.score == 0 and "not valid JSON" in g.explanation
    assert "empty" in grade_json(None, 1).explanation


def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert grade_json_schema('{"n": 3}', schema).passed
    g = grade_json_schema('{"n": "3"}', schema)
    assert not g.passed and "n: '3' is not of type 'integer'" in g.explanation
    assert "(root): 'n' is a required property" in grade_json_schema("{}", schema).explanation
    assert "not valid JSON" in grade_json_schema("{", schema).explanation


def test_graders_for_lists_present_fields_in_order() -> None:
    e = Expect.model_validate({"judge": {"profile": "j", "rubric": "r"}, "exact": "x", "tool_calls": [], "json": None})
    assert graders_for(e) == ["exact", "json", "tool_calls", "judge"]
    assert graders_for(Expect()) == []


# --- tool calls --------------------------------------------------------------------------------
def _calls(*calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": n, "arguments": a} for n, a in calls]


EXPECTED = [
    ExpectedCall(name="play", arguments={"artist": ["Taylor Swift"], "duration": [20], "shuffle": ["", False]}),
    ExpectedCall(name="play", arguments={"artist": ["Maroon 5"], "duration": [15]}),
]


def test_tool_calls_match_in_any_order_with_normalisation() -> None:
    actual = _calls(("play", {"artist": " maroon 5 ", "duration": 15.0}), ("play", {"artist": "TAYLOR SWIFT", "duration": 20}))
    g = grade_tool_calls(actual, EXPECTED)
    assert (g.score, g.passed) == (1.0, True) and "all 2" in g.explanation
    # The optional argument may be given (with an acceptable value) or left out; arguments may be JSON text.
    actual = [{"name": "play", "arguments": '{"artist": "Taylor Swift", "duration": 20, "shuffle": false}'},
              {"name": "play", "arguments": {"artist": "Maroon 5", "duration": 15}}]
    assert grade_tool_calls(actual, EXPECTED).passed


def test_tool_calls_wrong_value_explains_which_argument() -> None:
    actual = _calls(("play", {"artist": "Taylor Swift", "duration": 25}), ("play", {"artist": "Maroon 5", "duration": 15}))
    g = grade_tool_calls(actual, EXPECTED)
    assert (g.score, g.passed) == (0.5, False)
    assert "1 of 2 expected call(s) matched" in g.explanation
    assert "argument 'duration'=25, expected one of [20]" in g.explanation


def test_tool_calls_missing_extra_and_unexpected_arguments() -> None:
    g = grade_tool_calls(_calls(("play", {"artist": "Maroon 5", "duration": 15})), EXPECTED)
    assert g.score == 0.5 and "missing call play" in g.explanation
    three = _calls(("play", {"artist": "Taylor Swift", "duration": 20}), ("play", {"artist": "Maroon 5", "duration": 15}),
                   ("stop", {}))
    g = grade_tool_calls(three, EXPECTED)
    assert g.score == pytest.approx(2 / 3) and not g.passed and "unexpected call stop({})" in g.explanation
    g = grade_tool_calls(_calls(("play", {"artist": "Maroon 5", "duration": 15, "volume": 3}),
                                ("play", {"artist": "Taylor Swift", "duration": 20})), EXPECTED)
    assert g.score == 0.5 and "unexpected argument 'volume'=3" in g.explanation
    g = grade_tool_calls(_calls(("play", {"artist": "Maroon 5"}), ("play", {"artist": "Taylor Swift", "duration": 20})), EXPECTED)
    assert "missing argument 'duration'" in g.explanation
    assert grade_tool_calls([{"name": "play", "arguments": "{oops"}], EXPECTED[:1]).explanation.endswith(
        "arguments are not valid JSON (Expecting property name enclosed in double quotes)")
    assert grade_tool_calls([], []).passed
    g = grade_tool_calls(_calls(("x", {})), [])
    assert (g.score, g.passed) == (0.0, False)


def test_tool_calls_one_to_one_matching_is_maximal() -> None:
    # The first actual call fits both expected calls; a greedy matcher could waste it.
    expected = [ExpectedCall(name="f", arguments={"x": [1, 2]}), ExpectedCall(name="f", arguments={"x": [1]})]
    assert grade_tool_calls(_calls(("f", {"x": 1}), ("f", {"x": 2})), expected).passed
    assert grade_tool_calls(_calls(("f", {"x": 1}), ("f", {"x": 1})), expected).passed
    assert grade_tool_calls(_calls(("f", {"x": 2}), ("f", {"x": 2})), expected).score == 0.5


def test_value_matching_rules() -> None:
    assert value_matches(5, 5.0) and value_matches(0.5, 0.5)
    assert not value_matches(True, 1) and not value_matches(1, True) and value_matches(False, False)
    assert not value_matches("5", 5)
    assert value_matches("New York, NY", "new york ny")  # BFCL's standardize_string
    assert normalize_string(" It's 3.5 km/h ") == 'it"s35kmh'
    assert value_matches([1, "A"], [1.0, "a"]) and not value_matches([1, 2], [1])
    # Nested mappings: each value may be a list of acceptable values, "" marking an optional key.
    expected = {"city": ["NYC", "New York"], "unit": ["", "metric"], "tags": [["a", "b"]]}
    assert value_matches({"city": "new york", "tags": ["a", "b"]}, expected)
    assert value_matches({"city": "NYC", "unit": "metric", "tags": ["A", "B"]}, expected)
    assert not value_matches({"city": "Boston", "tags": ["a", "b"]}, expected)
    assert not value_matches({"city": "NYC"}, expected)  # tags is required
    assert not value_matches({"city": "NYC", "tags": ["a", "b"], "zip": 1}, expected)
    # Lists of mappings (BFCL's list_dict_checker) and a plain nested mapping.
    assert value_matches([{"k": 1}], [{"k": [1, 2]}])
    assert value_matches({"a": {"b": 1}}, {"a": {"b": 1}}) and value_matches(None, None)


def test_oracle_arguments_resolve_nested_acceptable_values() -> None:
    call = ExpectedCall(name="f", arguments={"loc": [{"city": ["NYC", "New York"], "zip": ["", "10001"]}],
                                             "n": [3, 4], "opt": ["", 1], "xs": [[1, 2]]})
    args = oracle_arguments(call)
    assert args == {"loc": {"city": "NYC"}, "n": 3, "xs": [1, 2]}
    assert grade_tool_calls([{"name": "f", "arguments": args}], [call]).passed


# --- SQL ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("lake")
    evs = []
    for i, (session, typ) in enumerate([("s1", "tool.call"), ("s1", "tool.result"), ("s1", "session.finished"),
                                        ("s2", "tool.call"), ("s2", "guardrail.denied")]):
        evs.append(make_event(typ, run_id="r1", session_id=session, ts=T0 + timedelta(seconds=i), seq=i,
                              tool="search" if typ.startswith("tool") else None, payload={"i": i}))
    LakeWriter(root).write(events_to_columns(evs))
    return str(root)


async def _sql(lake: str, session: str, *queries: str) -> tuple[float, bool, list[Grade]]:
    inp = _inp({"sql": [{"name": f"q{i}", "query": q} for i, q in enumerate(queries)]}, lake=lake, session=session)
    return await grade(inp, weights=[], pass_threshold=1.0)


async def test_sql_sees_only_the_samples_session(small_lake: str) -> None:
    no_denials = "select count(*) = 0 from events where type = 'guardrail.denied'"
    score, passed, grades = await _sql(small_lake, "s1", no_denials, "select count(*) = 3 from events")
    assert (score, passed) == (1.0, True) and grades[0].grader == "sql"
    assert "q0: pass (True)" in grades[0].explanation
    score, passed, grades = await _sql(small_lake, "s2", no_denials)
    assert (score, passed) == (0.0, False) and "q0: fail (False)" in grades[0].explanation


async def test_sql_numbers_and_mistakes(small_lake: str) -> None:
    score, passed, grades = await _sql(small_lake, "s1", "select count(*) filter (where type = 'tool.call') / count(*) from events",
                                       "select true")
    assert score == pytest.approx((1 / 3 + 1) / 2) and not passed
    for query, msg in [("select 'yes'", "the first column is 'yes'"),
                       ("select 2", "the first column is 2; return a boolean or a number in [0, 1]"),
                       ("select null", "the first column is NULL"),
                       ("select 1 where false", "returned no row"),
                       ("select * from range(3)", "returned more than one row"),
                       ("select nope from events", "query failed: Binder Error")]:
        score, passed, grades = await _sql(small_lake, "s1", query)
        assert (score, passed) == (0.0, False), query
        assert "q0: error: " in grades[0].explanation and msg in grades[0].explanation, grades[0].explanation


async def test_sql_on_an_empty_lake(tmp_path: Path) -> None:
    score, passed, _ = await _sql(str(tmp_path / "empty"), "s1", "select count(*) = 0 from events")
    assert (score, passed) == (1.0, True)


# --- python -------------------------------------------------------------------------------------
def says_hello(sample: GradeInput) -> bool:
    return "hello" in (sample.reply or "")


def seventy(sample: GradeInput) -> float:
    return 0.7


async def full_grade(sample: GradeInput) -> Grade:
    return Grade(grader="mine", score=1.0, passed=True, explanation="looks right")


def broken(sample: GradeInput) -> Any:
    raise RuntimeError("boom")


def bad_return(sample: GradeInput) -> Any:
    return "yes"


@pytest.mark.parametrize(
    ("fn", "reply", "score", "passed", "explanation"),
    [
        ("says_hello", "hello", 1.0, True, "returned True"),
        ("says_hello", "bye", 0.0, False, "returned False"),
        ("seventy", "x", 0.7, False, "returned 0.7"),
        ("full_grade", "x", 1.0, True, "looks right"),
        ("broken", "x", 0.0, False, "raised RuntimeError: boom"),
        ("bad_return", "x", 0.0, False, "returned 'yes'; return a Grade, a bool or a float"),
        ("missing", "x", 0.0, False, "has no attribute 'missing'"),
    ],
)
async def test_python_grader(fn: str, reply: str, score: float, passed: bool, explanation: str) -> None:
    inp = _inp({"python": f"tests.evals.test_graders:{fn}"}, reply=reply)
    total, ok, grades = await grade(inp, weights=[], pass_threshold=1.0)
    assert (total, ok) == (pytest.approx(score), passed)
    assert grades[0].grader == "python" and explanation in grades[0].explanation


# --- judge --------------------------------------------------------------------------------------
def judge_eight(request: LLMRequest, agent: str) -> str:
    assert agent == "judge" and request.messages[0].role == "system"
    prompt = request.messages[-1].content or ""
    assert "Rubric:\nbe polite" in prompt and "say hello" in prompt and "hello" in prompt
    return "8 - polite and on topic"


JUDGES = {
    "fn": ModelProfile(provider="function", function="tests.evals.test_graders:judge_eight"),
    "vague": ModelProfile(provider="scripted", scripts={"*": [{"text": "It is quite good."}]}),
    "loud": ModelProfile(provider="scripted", scripts={"*": [{"text": "Score: 15/10"}]}),
}


@pytest.mark.parametrize(
    ("profile", "pass_score", "score", "passed", "explanation"),
    [
        ("fn", 0.5, 0.8, True, "judge 'fn': 8 - polite"),
        ("fn", 0.9, 0.8, False, "8 - polite"),
        ("vague", 0.5, 0.0, False, "the judge's answer has no score: 'It is quite good.'"),
        ("loud", 0.5, 1.0, True, "15/10"),
        ("nope", 0.5, 0.0, False, "unknown model profile 'nope'"),
    ],
)
async def test_judge(profile: str, pass_score: float, score: float, passed: bool, explanation: str) -> None:
    inp = _inp({"judge": {"profile": profile, "rubric": "be polite", "pass_score": pass_score}})
    _, _, grades = await grade(inp, weights=[], pass_threshold=0.5, models=JUDGES)
    g = grades[0]
    assert (g.grader, g.score, g.passed) == ("judge", pytest.approx(score), passed)
    assert explanation in g.explanation


async def test_judge_without_models_is_an_error_grade() -> None:
    _, passed, grades = await grade(_inp({"judge": {"profile": "fn", "rubric": "r"}}), weights=[], pass_threshold=0.5)
    assert not passed and "no model profiles were given" in grades[0].explanation


def test_parse_judge_score() -> None:
    assert parse_judge_score("7") == 0.7 and parse_judge_score("**9.5**/10") == 0.95
    assert parse_judge_score("-3") == 0.0 and parse_judge_score("none") is None


# --- combining ----------------------------------------------------------------------------------
async def test_weighted_mean_and_threshold() -> None:
    inp = _inp({"exact": "hello", "contains": ["hello", "world"]})
    score, passed, grades = await grade(inp, weights=[], pass_threshold=1.0)
    assert [g.grader for g in grades] == ["exact", "contains"]
    assert (score, passed) == (pytest.approx(0.75), False)
    score, passed, _ = await grade(inp, weights=[GraderWeight(grader="exact", weight=3)], pass_threshold=0.8)
    assert (score, passed) == (pytest.approx((3 * 1 + 0.5) / 4), True)
    score, passed, _ = await grade(inp, weights=[GraderWeight(grader="contains", weight=0)], pass_threshold=1.0)
    assert (score, passed) == (1.0, True)


async def test_no_graders_and_unfinished_sessions() -> None:
    assert await grade(_inp(), weights=[], pass_threshold=1.0) == (1.0, True, [])
    score, passed, grades = await grade(_inp({"exact": "hello"}, status="budget_exceeded"), weights=[], pass_threshold=0)
    assert (score, passed) == (0.0, False)
    assert grades[0].grader == "status" and "'budget_exceeded', not 'completed'" in grades[0].explanation
    score, passed, _ = await grade(_inp(status="failed"), weights=[], pass_threshold=0)
    assert (score, passed) == (0.0, False)
