"""Loading suites: YAML + JSON Lines + teams, overrides, and errors that say where and how to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from troupe.evals.suite import CaseError, OverrideError, SuiteError, apply_overrides, load_suite
from troupe.runtime.errors import ConfigError

TEAM = """
name: t
entry: lead
default_model: m
models:
  m:
    provider: scripted
    scripts: {"*": [{text: hi}]}
  gpt-4.1:
    provider: scripted
    scripts: {"*": [{text: hi}]}
agents:
  - id: lead
    instructions: base
  - id: writer
    instructions: write
"""


def _suite(tmp_path: Path, cases: list[Any], suite: str | None = None, team: str = TEAM) -> Path:
    (tmp_path / "team.yaml").write_text(team)
    (tmp_path / "suite.yaml").write_text(suite if suite is not None else "name: s\nteam: team.yaml\n")
    lines = [c if isinstance(c, str) else json.dumps(c) for c in cases]
    (tmp_path / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "suite.yaml"


def test_loads_a_suite_with_paths_relative_to_it(tmp_path: Path) -> None:
    sub = tmp_path / "s"
    sub.mkdir()
    path = _suite(sub, [{"id": "a", "input": "hi", "expect": {"contains": "hello"}},
                        "",
                        {"id": "b", "input": [{"role": "user", "content": "x"}]}])
    for arg in (path, sub, str(path)):
        loaded = load_suite(arg)
        assert [c.id for c in loaded.cases] == ["a", "b"]
        assert loaded.base_dir == sub.resolve()
        assert loaded.lines == {"a": 1, "b": 3}
        assert loaded.cases[0].expect.contains == ["hello"]
        assert loaded.team_for(loaded.cases[0]).name == "t"
    assert loaded.case("b").id == "b"
    with pytest.raises(SuiteError, match="no case 'zz'"):
        loaded.case("zz")


def test_team_for_applies_dotted_overrides(tmp_path: Path) -> None:
    path = _suite(tmp_path, [{"id": "a", "input": "hi", "overrides": {
        "agents.0.instructions": "case instructions",
        "agents.writer.instructions": "by id",
        "budgets.max_tokens": 2000,
        "models.m.temperature": 0.3,
        "models.gpt-4.1.max_tokens": 50,
    }}])
    loaded = load_suite(path)
    case = loaded.cases[0]
    team = loaded.team_for(case)
    assert team.agent("lead").instructions == "case instructions"
    assert team.agent("writer").instructions == "by id"
    assert team.budgets.max_tokens == 2000
    assert team.models["m"].temperature == 0.3
    assert team.models["gpt-4.1"].max_tokens == 50
    # Extra overrides (a grid cell) win over the case's own; the base team is untouched.
    team2 = loaded.team_for(case, {"agents.0.instructions": "grid"})
    assert team2.agent("lead").instructions == "grid"
    assert loaded.base_team(case).agent("lead").instructions == "base"


def test_apply_overrides_copies_creates_and_refuses_bad_paths() -> None:
    data = {"agents": [{"id": "a", "instructions": "x"}], "budgets": {}, "name": "t"}
    out = apply_overrides(data, {"agents.0.instructions": "y", "budgets.max_tokens": 5, "workspace.root": "/w"})
    assert out["agents"][0]["instructions"] == "y" and out["budgets"] == {"max_tokens": 5}
    assert out["workspace"] == {"root": "/w"}
    assert data["agents"][0]["instructions"] == "x" and data["budgets"] == {}  # not mutated
    assert apply_overrides(data, {"agents.-1.instructions": "z"})["agents"][0]["instructions"] == "z"
    with pytest.raises(OverrideError, match=r"index 3 is out of range, agents has 1 entry"):
        apply_overrides(data, {"agents.3.instructions": "y"})
    with pytest.raises(OverrideError, match=r"'nobody' is neither an index \(0..0\) or an id among \['a'\]"):
        apply_overrides(data, {"agents.nobody.instructions": "y"})
    with pytest.raises(OverrideError, match="name is a str"):
        apply_overrides(data, {"name.first": "y"})
    with pytest.raises(OverrideError, match="empty path segment"):
        apply_overrides(data, {"agents..x": 1})
    assert issubclass(OverrideError, ConfigError)


def test_a_bad_override_fails_in_team_for_or_at_load_when_checked(tmp_path: Path) -> None:
    path = _suite(tmp_path, [{"id": "a", "input": "hi"}, {"id": "b", "input": "hi", "overrides": {"budgets.max_tokns": 5}}])
    loaded = load_suite(path)  # overrides are checked when the case's team is built ...
    with pytest.raises(OverrideError) as e:
        loaded.team_for(loaded.case("b"))
    assert "max_tokns: Extra inputs are not permitted" in str(e.value)
    assert "did you mean 'budgets.max_tokens'" in str(e.value)
    with pytest.raises(CaseError) as e:  # ... or up front, with the file and line
        load_suite(path, check_overrides=True)
    msg = str(e.value)
    assert "cases.jsonl:2 (case 'b')" in msg and "did you mean 'budgets.max_tokens'" in msg
    path = _suite(tmp_path, [{"id": "a", "input": "hi", "overrides": {"agents.7.instructions": "x"}}])
    with pytest.raises(CaseError, match=r"cases.jsonl:1 .*index 7 is out of range"):
        load_suite(path, check_overrides=True)


def test_overrides_may_add_the_judges_profile(tmp_path: Path) -> None:
    judge = {"provider": "scripted", "scripts": {"*": [{"text": "9"}]}}
    path = _suite(tmp_path, [{"id": "a", "input": "hi", "overrides": {"models.judge": judge},
                              "expect": {"judge": {"profile": "judge", "rubric": "r"}}}])
    loaded = load_suite(path, check_overrides=True)
    assert "judge" in loaded.team_for(loaded.cases[0]).models


@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        ([{"id": "a", "input": "x"}, "{not json"], r"cases.jsonl:2: not valid JSON"),
        ([{"id": "a", "input": "x"}, {"id": "a", "input": "y"}], r"duplicate case id 'a' at .*cases.jsonl:2 \(first at line 1\)"),
        (["[1, 2]"], r"cases.jsonl:1: expected a JSON object"),
        ([{"id": "a", "input": "x", "expekt": {}}], r"cases.jsonl:1 \(case 'a'\):\n  - expekt: Extra inputs.*remove it"),
        ([{"id": "a", "input": "x", "expect": {"containz": "y"}}], r"expect.containz: .*expect fields: \[.*'contains'"),
        ([{"input": "x"}], r"cases.jsonl:1:\n  - id: Field required; add it"),
        ([{"id": "a", "input": "x", "team": "missing.yaml"}], r"team 'missing.yaml' does not exist"),
        ([{"id": "a", "input": "x", "expect": {"regex": "("}}], r"expect.regex '\(' is not a valid regular expression"),
        ([{"id": "a", "input": "x", "expect": {"json_schema": {"type": 5}}}], r"expect.json_schema is not a valid JSON schema"),
        ([{"id": "a", "input": "x", "expect": {"python": "nocolon"}}], r"must be 'package.module:function'"),
        ([{"id": "a", "input": "x", "expect": {"judge": {"profile": "judge", "rubric": "r"}}}],
         r"judge.profile 'judge' is not a model profile of the case's team \(profiles: \['gpt-4.1', 'm'\]\)"),
    ],
)
def test_case_errors_name_the_file_line_and_field(tmp_path: Path, lines: list[Any], pattern: str) -> None:
    path = _suite(tmp_path, lines)
    with pytest.raises(CaseError, match=pattern):
        load_suite(path)


def test_a_case_can_run_on_its_own_team(tmp_path: Path) -> None:
    path = _suite(tmp_path, [{"id": "a", "input": "x", "team": "other.yaml"}])
    (tmp_path / "other.yaml").write_text(TEAM.replace("name: t", "name: other"))
    loaded = load_suite(path)
    assert loaded.team_for(loaded.cases[0]).name == "other"
    (tmp_path / "other.yaml").write_text("name: broken\n")
    with pytest.raises(CaseError, match=r"cases.jsonl:1 \(case 'a'\): team 'other.yaml'"):
        load_suite(path)


@pytest.mark.parametrize(
    ("suite", "pattern"),
    [
        ("name: s\n", r"suite.yaml:\n  - team: Field required"),
        ("name: s\nteam: nope.yaml\n", r"team 'nope.yaml': team file .*nope.yaml does not exist"),
        ("name: s\nteam: team.yaml\ncases: other.jsonl\n", r"cases file .*other.jsonl does not exist"),
        ("name: s\nteam: team.yaml\npass_treshold: 1\n", r"pass_treshold: Extra inputs.*fields: \["),
        ("name: s\nteam: team.yaml\nweights: [{grader: tool_call}]\n", r"unknown grader 'tool_call' \(did you mean 'tool_calls'\?\)"),
        ("name: s\nteam: team.yaml\ngates: {required_cases: [zz]}\n", r"required_cases names unknown case\(s\) \['zz'\]"),
        ("- a\n", r"expected a mapping"),
        ("name: [\n", r"not valid YAML"),
    ],
)
def test_suite_errors(tmp_path: Path, suite: str, pattern: str) -> None:
    path = _suite(tmp_path, [{"id": "a", "input": "x"}], suite=suite)
    with pytest.raises(SuiteError, match=pattern) as e:
        load_suite(path)
    assert isinstance(e.value, ConfigError)


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(SuiteError, match="suite.yaml does not exist"):
        load_suite(tmp_path)
