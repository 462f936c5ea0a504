"""Loading a suite: its YAML, its cases (JSON Lines) and the teams they run on, checked up front.

Every mistake is a :class:`~troupe.runtime.errors.ConfigError` that names the file (and the line, for a
case), the field, and what to do about it, so a sweep never starts on a suite that cannot finish.

A case may change its team with ``overrides``: dotted paths into the team's dict form
(``agents.0.instructions``, ``agents.writer.instructions``, ``budgets.max_tokens``,
``models.m.temperature``); :func:`apply_overrides` does the same for a sweep's grid values.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from troupe.evals.models import Case, Expect, Suite
from troupe.runtime.config import TeamConfig, load_team, parse_team
from troupe.runtime.errors import ConfigError

GRADERS: tuple[str, ...] = ("exact", "contains", "regex", "json", "json_schema", "tool_calls", "sql", "python", "judge")
"""Grader names, in the order they run (also the names ``weights`` may use)."""


class SuiteError(ConfigError):
    """A suite file (or what it points at) is wrong."""


class CaseError(SuiteError):
    """A line of a suite's cases file is wrong."""


class OverrideError(ConfigError):
    """A dotted override path does not fit the team."""


# --- overrides ---------------------------------------------------------------------------------
def _describe(node: Any) -> str:
    if isinstance(node, dict):
        keys = sorted(map(str, node))
        return f"a mapping with keys {keys}" if keys else "an empty mapping"
    if isinstance(node, list):
        return f"a list of {len(node)}"
    return f"a {type(node).__name__} ({node!r})"


def _list_index(node: list[Any], seg: str, path: str, walked: str) -> int:
    try:
        i = int(seg)
    except ValueError:
        ids = [x.get("id") for x in node if isinstance(x, dict)]
        if seg in ids:
            return ids.index(seg)
        hint = f" or an id among {ids}" if any(i is not None for i in ids) else ""
        raise OverrideError(
            f"override {path!r}: {walked or '(team)'} is a list of {len(node)}; {seg!r} is neither an index "
            f"(0..{len(node) - 1}){hint}. Fix the path.",
            path=path,
        ) from None
    if not -len(node) <= i < len(node):
        raise OverrideError(
            f"override {path!r}: index {i} is out of range, {walked or '(team)'} has {len(node)} entr"
            f"{'y' if len(node) == 1 else 'ies'} (0..{len(node) - 1}). Fix the path.",
            path=path,
        )
    return i


def _dict_key(node: dict[str, Any], parts: list[str], i: int) -> tuple[str, int]:
    """The key at ``parts[i]``; a key that itself holds dots (a profile named ``gpt-4.1``) wins
    when it exists. Returns the key and how many segments it used."""
    for j in range(len(parts), i + 1, -1):
        joined = ".".join(parts[i:j])
        if joined in node:
            return joined, j - i
    return parts[i], 1


def _set_path(data: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    if any(p == "" for p in parts):
        raise OverrideError(f"override {path!r}: empty path segment; write e.g. 'agents.0.instructions'", path=path)
    node = data
    walked = ""
    i = 0
    while True:
        key: Any
        if isinstance(node, list):
            key, used = _list_index(node, parts[i], path, walked), 1
        elif isinstance(node, dict):
            key, used = _dict_key(node, parts, i)
        else:
            raise OverrideError(
                f"override {path!r}: {walked} is {_describe(node)}, which has no field {parts[i]!r}. Fix the path.",
                path=path,
            )
        i += used
        walked = f"{walked}.{key}" if walked else str(key)
        if i == len(parts):
            node[key] = copy.deepcopy(value)
            return
        if isinstance(node, dict) and key not in node:
            node[key] = {}  # e.g. budgets.max_tokens where budgets was left out; validation catches typos
        node = node[key]


_MISSING = object()


def _get_path(data: Any, path: str) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    parts = path.split(".")
    node = data
    i = 0
    while i < len(parts):
        seg = parts[i]
        if isinstance(node, list):
            ids = [x.get("id") for x in node if isinstance(x, dict)]
            if seg in ids:
                node = node[ids.index(seg)]
            else:
                try:
                    node = node[int(seg)]
                except (ValueError, IndexError):
                    return _MISSING
            i += 1
        elif isinstance(node, dict):
            key, used = _dict_key(node, parts, i)
            if key not in node:
                return _MISSING
            node, i = node[key], i + used
        else:
            return _MISSING
    return node


def apply_overrides(team_dict: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``team_dict`` with each ``dotted.path: value`` set, in order.

    A path walks mappings by key and lists by index (or, for lists of mappings such as
    ``agents``, by ``id``): ``agents.0.instructions``, ``agents.writer.model``,
    ``budgets.max_tokens``, ``models.m.temperature``. A missing last key is added (a missing
    mapping on the way is created); a bad index or a path through a scalar raises
    :class:`OverrideError`. The result is not validated: pass it to ``parse_team``.
    """
    out = copy.deepcopy(dict(team_dict))
    for path, value in overrides.items():
        if not isinstance(path, str):
            raise OverrideError(f"override keys must be dotted strings, got {path!r}", path=str(path))
        _set_path(out, path, value)
    return out


def _override_hints(original: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    hints = []
    for path in overrides:
        if _get_path(original, path) is not _MISSING:
            continue
        head, _, leaf = path.rpartition(".")
        parent = _get_path(original, head) if head else original
        close = difflib.get_close_matches(leaf, list(map(str, parent)), n=1) if isinstance(parent, dict) else []
        if close:
            hints.append(f"override {path!r} is not a field the team had; did you mean "
                         f"{(head + '.' if head else '') + close[0]!r}?")
        else:
            hints.append(f"override {path!r} is not a field the team had")
    return hints


def team_with_overrides(team: TeamConfig, overrides: Mapping[str, Any], *, source: str) -> TeamConfig:
    """``team`` with dotted-path ``overrides`` applied and the result validated again."""
    if not overrides:
        return team
    original = team.model_dump(by_alias=True)
    data = apply_overrides(original, overrides)
    try:
        return parse_team(data, source=source)
    except ConfigError as e:
        hints = _override_hints(original, overrides)
        extra = "".join(f"\n  hint: {h}" for h in hints)
        raise OverrideError(f"{e.message}\n  (after applying overrides {dict(overrides)!r}){extra}",
                            source=source) from e


# --- loading -----------------------------------------------------------------------------------
@dataclass
class LoadedSuite:
    """A suite with its cases and teams, checked."""

    suite: Suite
    cases: list[Case]
    base_dir: Path
    """The suite file's folder: team and case paths are relative to it."""
    path: Path | None = None
    """The suite file."""
    cases_path: Path | None = None
    lines: dict[str, int] = field(default_factory=dict)
    """Case id -> its line in the cases file (for messages)."""
    python_path: list[str] = field(default_factory=list)
    """The suite's ``python_path`` folders, absolute (already on this process's ``sys.path``)."""
    _teams: dict[Path, TeamConfig] = field(default_factory=dict, repr=False)

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise SuiteError(f"suite {self.suite.name!r} has no case {case_id!r}", case=case_id)

    def team_path(self, case: Case | None = None) -> Path:
        """The team file ``case`` runs on (the suite's unless the case names its own)."""
        rel = case.team if case is not None and case.team else self.suite.team
        return (self.base_dir / rel).resolve()

    def base_team(self, case: Case | None = None) -> TeamConfig:
        """The team file's config, before the case's overrides."""
        p = self.team_path(case)
        if p not in self._teams:
            self._teams[p] = load_team(p)
        return self._teams[p]

    def team_for(self, case: Case, overrides: Mapping[str, Any] | None = None) -> TeamConfig:
        """The team ``case`` runs on, with its ``overrides`` applied, then ``overrides`` (a grid
        cell's team-field values, which win over the case's)."""
        merged = {**case.overrides, **(overrides or {})}
        return team_with_overrides(self.base_team(case), merged, source=f"{self.team_path(case)} (case {case.id!r})")


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _validation_lines(err: ValidationError, model: type) -> list[str]:
    lines = []
    for e in err.errors():
        loc = _fmt_loc(e["loc"])
        got = e.get("input")
        got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        fix = ""
        if e["type"] == "extra_forbidden":
            fix = "; remove it or check its spelling"
            if len(e["loc"]) == 1:
                fix += f" (fields: {sorted(model.model_fields)})"  # type: ignore[attr-defined]
            elif len(e["loc"]) == 2 and e["loc"][0] == "expect":
                fix += f" (expect fields: {sorted(['json' if n == 'json_value' else n for n in Expect.model_fields])})"
        elif e["type"] == "missing":
            fix = "; add it"
        lines.append(f"  - {loc}: {e['msg']}{got_text}{fix}")
    return lines


def _read_suite_yaml(path: Path) -> Suite:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SuiteError(f"invalid suite file {path}: not valid YAML: {e}", source=str(path)) from e
    if not isinstance(data, dict):
        raise SuiteError(
            f"invalid suite file {path}: expected a mapping with at least 'name' and 'team', got {type(data).__name__}",
            source=str(path),
        )
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise SuiteError("\n".join([f"invalid suite file {path}:", *_validation_lines(e, Suite)]),
                         source=str(path)) from e


def _read_cases(path: Path) -> tuple[list[Case], dict[str, int]]:
    if not path.is_file():
        raise SuiteError(f"cases file {path} does not exist; set 'cases:' in the suite to a JSON Lines file "
                         f"(relative to the suite file)", source=str(path))
    cases: list[Case] = []
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            where = f"{path}:{n}"
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise CaseError(f"invalid case at {where}: not valid JSON ({e.msg} at column {e.colno}); each line "
                                f"must be one JSON object", source=str(path), line=n) from e
            if not isinstance(data, dict):
                raise CaseError(f"invalid case at {where}: expected a JSON object with 'id' and 'input', got "
                                f"{type(data).__name__}", source=str(path), line=n)
            try:
                case = Case.model_validate(data)
            except ValidationError as e:
                cid = data.get("id")
                label = f" (case {cid!r})" if isinstance(cid, str) else ""
                raise CaseError("\n".join([f"invalid case at {where}{label}:", *_validation_lines(e, Case)]),
                                source=str(path), line=n) from e
            if case.id in lines:
                raise CaseError(f"duplicate case id {case.id!r} at {where} (first at line {lines[case.id]}); "
                                f"case ids must be unique within a suite", source=str(path), line=n)
            lines[case.id] = n
            cases.append(case)
    return cases, lines


def check_expect(expect: Expect, *, where: str, models: Mapping[str, Any] | None = None,
                 python_path: Sequence[str] = ()) -> None:
    """Catch mistakes in an expectation that would otherwise surface only while grading (a
    ``python:`` grader is imported and its signature checked here)."""
    if expect.regex is not None:
        try:
            re.compile(expect.regex)
        except re.error as e:
            raise CaseError(f"{where}: expect.regex {expect.regex!r} is not a valid regular expression ({e})") from e
    if expect.json_schema is not None:
        from jsonschema import SchemaError, validators

        cls = validators.validator_for(expect.json_schema, default=validators.Draft202012Validator)
        try:
            cls.check_schema(expect.json_schema)
        except SchemaError as e:
            raise CaseError(f"{where}: expect.json_schema is not a valid JSON schema: {e.message}") from e
    if expect.python is not None:
        mod, sep, fn = expect.python.partition(":")
        if not sep or not mod or not fn:
            raise CaseError(f"{where}: expect.python {expect.python!r} must be 'package.module:function'")
        from troupe.evals.grade_python import check_python_grader

        try:
            check_python_grader(expect.python, path=python_path)
        except ConfigError as e:
            hint = " (a suite-local module: list its folder under python_path in the suite)" \
                if "cannot import" in e.message else ""
            raise CaseError(f"{where}: expect.python {expect.python!r}: {e.message}{hint}") from e
    if expect.judge is not None and models is not None and expect.judge.profile not in models:
        raise CaseError(f"{where}: expect.judge.profile {expect.judge.profile!r} is not a model profile of the "
                        f"case's team (profiles: {sorted(models)}); add it under 'models' in the team file")
    if expect.sql is not None:
        for i, check in enumerate(expect.sql):
            if not check.query.strip():
                raise CaseError(f"{where}: expect.sql.{i}.query is empty")


def _python_path(suite: Suite, base: Path, path: Path) -> list[str]:
    """The suite's ``python_path`` folders, absolute, checked, and put on ``sys.path``."""
    out: list[str] = []
    for rel in suite.python_path:
        found = (base / rel).resolve()
        if not found.is_dir():
            raise SuiteError(f"invalid suite file {path}: python_path {rel!r} is not a folder (looked for {found}); "
                             f"paths are relative to the suite file", source=str(path))
        out.append(str(found))
    for folder in reversed(out):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    return out


def load_suite(path: str | Path, *, check_overrides: bool = False) -> LoadedSuite:
    """Load a suite YAML file (or a folder holding ``suite.yaml``), its cases and its teams.

    The suite, every case and every team file are checked here. A case's ``overrides`` are
    checked only with ``check_overrides=True``; otherwise a bad one surfaces from
    :meth:`LoadedSuite.team_for` (a sweep records it against that case's samples and goes on).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "suite.yaml"
    if not p.is_file():
        runner = p.parent / "run_suite.py"  # a suite the harness cannot run (evals/suites/memory: sessions per case)
        own = f"; {p.parent} is run by its own runner instead: python {runner}" if runner.is_file() else ""
        raise SuiteError(f"suite file {p} does not exist; pass a suite YAML file or a folder with suite.yaml{own}",
                         source=str(p))
    p = p.resolve()
    suite = _read_suite_yaml(p)
    base = p.parent
    python_path = _python_path(suite, base, p)
    for w in suite.weights:
        if w.grader not in GRADERS:
            close = difflib.get_close_matches(w.grader, GRADERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SuiteError(f"invalid suite file {p}: weights: unknown grader {w.grader!r}{hint}; graders are "
                             f"{list(GRADERS)}", source=str(p))
    cases_path = (base / suite.cases).resolve()
    cases, lines = _read_cases(cases_path)
    loaded = LoadedSuite(suite=suite, cases=cases, base_dir=base, path=p, cases_path=cases_path, lines=lines,
                         python_path=python_path)

    # Teams: the suite's, and every case's own, must load.
    try:
        loaded.base_team()
    except ConfigError as e:
        raise SuiteError(f"invalid suite file {p}: team {suite.team!r}: {e.message}", source=str(p)) from e
    for case in cases:
        where = f"{cases_path}:{lines[case.id]} (case {case.id!r})"
        if case.team:
            tp = loaded.team_path(case)
            if not tp.exists():
                raise CaseError(f"{where}: team {case.team!r} does not exist (looked for {tp}); team paths are "
                                f"relative to the suite file", source=str(cases_path), line=lines[case.id])
            try:
                loaded.base_team(case)
            except ConfigError as e:
                raise CaseError(f"{where}: team {case.team!r}: {e.message}", source=str(cases_path),
                                line=lines[case.id]) from e
        models: Mapping[str, Any] | None = loaded.base_team(case).models
        if case.overrides:
            try:
                models = loaded.team_for(case).models
            except ConfigError as e:
                if check_overrides:
                    raise CaseError(f"{where}: overrides: {e.message}", source=str(cases_path),
                                    line=lines[case.id]) from e
                models = None  # the overrides may be what adds the judge's profile
        try:
            check_expect(case.expect, where=where, models=models, python_path=python_path)
        except CaseError as e:
            raise CaseError(e.message, source=str(cases_path), line=lines[case.id]) from e

    unknown = [c for c in suite.gates.required_cases if c not in lines]
    if unknown:
        raise SuiteError(f"invalid suite file {p}: gates.required_cases names unknown case(s) {unknown}",
                         source=str(p))
    return loaded


__all__ = [
    "GRADERS",
    "CaseError",
    "LoadedSuite",
    "OverrideError",
    "SuiteError",
    "apply_overrides",
    "check_expect",
    "load_suite",
    "team_with_overrides",
]
