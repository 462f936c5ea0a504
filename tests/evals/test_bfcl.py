"""The committed BFCL suites load, are self-consistent, and the tool-call grader scores each case's
own oracle calls 1.0 and a perturbed call below 1 - for every case of every suite."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators

from troupe.evals.bfcl.convert import CATEGORIES, convert_case, convert_schema, main, sanitize_name
from troupe.evals.grade_calls import grade_tool_calls, oracle_arguments
from troupe.evals.models import ExpectedCall
from troupe.evals.suite import LoadedSuite, load_suite
from troupe.runtime.config import DeclaredTool as RuntimeDeclaredTool
from troupe.runtime.config import load_team

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"
CATEGORIES_SHIPPED = ("simple", "multiple", "parallel", "parallel_multiple")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@pytest.fixture(scope="module", params=CATEGORIES_SHIPPED)
def suite(request: pytest.FixtureRequest) -> LoadedSuite:
    return load_suite(SUITES / f"bfcl_{request.param}")


def _oracle(expected: list[ExpectedCall]) -> list[dict[str, Any]]:
    """Each argument's first acceptable value; arguments whose first value is "" left out."""
    return [{"name": e.name, "arguments": {k: v[0] for k, v in e.arguments.items() if v and v[0] != ""}}
            for e in expected]


def _perturb(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [{"name": c["name"], "arguments": dict(c["arguments"])} for c in calls]
    args = out[0]["arguments"]
    if args:
        args[next(iter(args))] = "__not_an_acceptable_value__"
    else:
        args["__unexpected__"] = 1
    return out


def test_suite_files_and_team(suite: LoadedSuite) -> None:
    s = suite.suite
    assert s.name == f"bfcl_{suite.cases[0].tags[1]}" and len(suite.cases) >= 100
    assert s.license and "Apache-2.0" in s.license
    assert suite.team_path() == (SUITES / "bfcl_team.yaml").resolve()
    team = suite.team_for(suite.cases[0])
    assert team.entry == "solver" and team.default_model == "oracle"
    assert team.models["oracle"].provider == "scripted"
    local = team.models["local"]
    assert (local.provider, local.model, local.temperature, local.parse_text_tool_calls, local.tools_after_results) == (
        "local", "default", 0, True, False)


def test_every_case_is_consistent(suite: LoadedSuite) -> None:
    for case in suite.cases:
        assert isinstance(case.input, str) and case.input.strip(), case.id
        names = [t.name for t in case.tools]
        assert len(set(names)) == len(names), case.id
        for tool in case.tools:
            assert _TOOL_NAME.fullmatch(tool.name), (case.id, tool.name)
            RuntimeDeclaredTool.model_validate(tool.model_dump())  # the runtime accepts it as a declared tool
            assert tool.parameters.get("type") == "object", case.id
            validators.Draft202012Validator.check_schema(tool.parameters)
            first_line = tool.description.split("\n")[0]
            if first_line.startswith("Original name: "):  # a renamed BFCL function keeps its name here
                assert tool.name.startswith(sanitize_name(first_line.removeprefix("Original name: "))), case.id
        assert case.expect.tool_calls, case.id
        for call in case.expect.tool_calls:
            assert call.name in names, (case.id, call.name, names)


def test_oracle_calls_score_one_and_perturbed_calls_less(suite: LoadedSuite) -> None:
    for case in suite.cases:
        expected = case.expect.tool_calls or []
        oracle = _oracle(expected)
        g = grade_tool_calls(oracle, expected)
        assert (g.score, g.passed) == (1.0, True), (case.id, g.explanation)
        nested = [{"name": e.name, "arguments": oracle_arguments(e)} for e in expected]
        assert grade_tool_calls(nested, expected).score == 1.0, case.id
        assert grade_tool_calls(list(reversed(oracle)), expected).score == 1.0, case.id
        bad = grade_tool_calls(_perturb(oracle), expected)
        assert bad.score < 1.0 and not bad.passed, case.id
        assert grade_tool_calls(oracle[1:], expected).score < 1.0, case.id
        assert grade_tool_calls([*oracle, oracle[0]], expected).score < 1.0, case.id


def test_licence_and_readme_ship_with_the_suites() -> None:
    assert "Apache License" in (SUITES / "BFCL_LICENSE").read_text()
    readme = (SUITES / "README.md").read_text()
    assert "bfcl-eval" in readme and "python -m troupe.evals.bfcl.convert" in readme
    assert load_team(SUITES / "bfcl_team.yaml").name == "bfcl"
    total = sum(p.stat().st_size for p in SUITES.rglob("*") if p.is_file())
    assert total < 4 * 1024 * 1024


# --- the converter -------------------------------------------------------------------------------
def test_sanitize_and_schema_conversion() -> None:
    assert sanitize_name("math.factorial") == "math_factorial"
    assert sanitize_name("a b/c:d") == "a_b_c_d" and len(sanitize_name("x" * 80)) == 64
    schema = {"type": "dict", "properties": {
        "x": {"type": "float", "optional": True, "default": 1.0},
        "pt": {"type": "tuple", "items": {"type": "float"}},
        "v": {"type": "any", "description": "anything"},
        "type": {"type": "string"},
        "optional": {"type": "array", "items": {"type": "dict", "properties": {"k": {"type": "integer"}}}},
    }, "required": ["pt"]}
    assert convert_schema(schema) == {"type": "object", "properties": {
        "x": {"type": "number", "default": 1.0},
        "pt": {"type": "array", "items": {"type": "number"}},
        "v": {"description": "anything"},
        "type": {"type": "string"},
        "optional": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "integer"}}}},
    }, "required": ["pt"]}


def test_convert_case_maps_names_and_answers() -> None:
    entry = {"id": "x_1", "question": [[{"role": "user", "content": "5!"}]], "function": [
        {"name": "math.factorial", "description": "Factorial.", "parameters": {"type": "dict", "properties": {
            "number": {"type": "integer"}}, "required": ["number"]}},
        {"name": "math_factorial", "description": "Clash.", "parameters": {"type": "dict", "properties": {}}},
    ]}
    answer = {"id": "x_1", "ground_truth": [{"math.factorial": {"number": [5]}}, {"math_factorial": {}}]}
    case = convert_case(entry, answer, "simple")
    assert case["input"] == "5!" and case["tags"] == ["bfcl", "simple"]
    assert [t["name"] for t in case["tools"]] == ["math_factorial", "math_factorial_2"]
    assert case["tools"][0]["description"] == "Original name: math.factorial\nFactorial."
    assert case["tools"][1]["description"] == "Original name: math_factorial\nClash."
    assert case["expect"]["tool_calls"] == [{"name": "math_factorial", "arguments": {"number": [5]}},
                                            {"name": "math_factorial_2", "arguments": {}}]
    entry["question"] = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "5!"}]]
    assert convert_case(entry, answer, "simple")["input"] == [{"role": "system", "content": "be brief"},
                                                              {"role": "user", "content": "5!"}]


def test_converter_writes_loadable_suites(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, bfcl_eval_path: Path) -> None:
    if importlib.util.find_spec("bfcl_eval") is None:
        monkeypatch.syspath_prepend(str(bfcl_eval_path))  # the wheel, installed by the test setup on its own
        importlib.invalidate_caches()
    assert main(["--out", str(tmp_path), "--limit", "3", "--categories", "simple,live_parallel"]) == 0
    assert "bfcl_simple: 3 cases" in capsys.readouterr().out
    for category in ("simple", "live_parallel"):
        loaded = load_suite(tmp_path / f"bfcl_{category}")
        assert len(loaded.cases) == 3 and CATEGORIES[category]
    assert (tmp_path / "bfcl_team.yaml").is_file() and (tmp_path / "README.md").is_file()
