"""The skills suite (issue #17): on its deterministic model every case passes - a task that needs a skill
loads that skill and no other, and answers with what the skill's script or reference produced; a task that
needs none loads none - and the grader, which reads the skill.loaded events, fails a wrong load."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.tools.test_sandbox import bwrap_here  # noqa: F401  (skip locally, fail under CI, without bwrap)
from troupe.evals.models import Case, Expect, SqlCheck
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suites" / "skills"


def test_the_router_loads_a_skill_only_when_its_description_fits() -> None:
    sys.path.insert(0, str(SUITE))
    try:
        from skill_router import choose  # the suite's own module (python_path: ["."])
    finally:
        sys.path.remove(str(SUITE))
    skills = {"temperature-convert": "Convert a temperature between Celsius, Fahrenheit and Kelvin.",
              "roman-numerals": "Convert numbers to Roman numerals and back."}
    assert choose("convert 10 celsius to kelvin", skills) == "temperature-convert"
    assert choose("Convert 5 kilometres to miles.", skills) is None  # one shared word is not enough
    assert choose("what is 12 times 7?", {}) is None


async def test_the_suite_passes_on_its_deterministic_model_and_its_grader_bites(troupe: Troupe, lake: Path) -> None:
    suite = load_suite(SUITE)
    needs = {c.id: next(t for t in c.tags if t not in ("skills", "needs-skill")) for c in suite.cases
             if "needs-skill" in c.tags}
    assert len(needs) >= 6 and len(suite.cases) - len(needs) >= 4
    wrong = Case(id="wrong_expectation", input="Convert 100 degrees Celsius to Fahrenheit.", expect=Expect(sql=[
        SqlCheck(query="select count(*) >= 1 and bool_and(json_extract_string(payload, '$.name') = 'roman-numerals') "
                       "from events where type = 'skill.loaded'")]))
    suite.cases.append(wrong)
    sweep = Sweep(troupe, suite, concurrency=4)
    await sweep.run()
    rows = {r["case_id"]: r for r in results_table(lake, sweep.run_id).to_pylist()}
    assert {c: r["status"] for c, r in rows.items()} == {c.id: "completed" for c in suite.cases}
    assert {c: r["passed"] for c, r in rows.items() if not r["passed"]} == {"wrong_expectation": False}
    case_of = {r["session_id"]: c for c, r in rows.items()}
    sessions = ", ".join(f"'{sid}'" for sid in case_of)
    loads = query(lake, "select session_id, list(json_extract_string(payload, '$.name') order by seq) as names "
                        f"from events where type = 'skill.loaded' and session_id in ({sessions}) "
                        "group by session_id").to_pylist()
    assert {case_of[r["session_id"]]: r["names"] for r in loads} == {**{c: [s] for c, s in needs.items()},
                                                                    "wrong_expectation": ["temperature-convert"]}
