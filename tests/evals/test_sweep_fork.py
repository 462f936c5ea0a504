"""Forking and replaying a recorded sweep (``troupe eval run --from-run RUN --fork-at STEP``), in one
process: a fork after the first tool result with another late prompt makes only the late model calls
and runs no tool; a sample that never reached the step runs from the start; the SQL links each child
to its parent; a replay makes no model call and replays every sample identically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from troupe.evals.cli import parse_sets
from troupe.evals.results import connect, read_manifest, results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.evals.sweep_fork import ForkedSweep
from troupe.runtime.api import Troupe
from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.replay.steps import StepError
from troupe.tools.spec import tool

CALLS: list[str] = []
"""Every model call the stand-in answered (its agent)."""
SIDE_EFFECTS: list[str] = []


def model(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Looks the question up, then answers from the tool's result; shouts when its prompt says so."""
    CALLS.append(agent)
    question = next(m.content for m in request.messages if m.role == "user") or ""
    last = request.messages[-1]
    if last.role == "tool":
        text = f"the lookup said: {last.content}"
    elif "no tool" in question:
        text = "nothing to look up"
    else:
        return LLMResponse(tool_calls=[ToolCall(id=f"c{len(CALLS)}", name="lookup", arguments=json.dumps({"q": question}))])
    return text.upper() if "Shout." in (request.messages[0].content or "") else text


def other_model(request: LLMRequest, agent: str) -> str:
    """Another model: answers tersely from the tool's result."""
    CALLS.append(f"{agent}:other")
    last = request.messages[-1]
    return f"{last.content}." if last.role == "tool" else "nothing."


@tool(execution="io")
def lookup(q: str) -> str:
    """Look something up (a side effect: counted)."""
    SIDE_EFFECTS.append(q)
    return "42"


CASES = [
    {"id": "exact", "input": "what is x", "expect": {"exact": "the lookup said: 42"}},
    {"id": "any-case", "input": "what is y", "expect": {"regex": "(?i)the lookup said: 42"}},
    {"id": "no-tool", "input": "no tool here", "expect": {"regex": "(?i)nothing to look up"}},
]


def write_suite(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": "t", "entry": "a", "default_model": "fn",
        "models": {"fn": {"provider": "function", "function": f"{__name__}:model"},
                   "other": {"provider": "function", "function": f"{__name__}:other_model"}},
        "agents": [{"id": "a", "instructions": "Answer.", "tools": ["lookup"]}],
    }))
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": "forkable", "team": "team.yaml", "cases": "cases.jsonl",
                                                       "timeout_s": 20}))
    return folder / "suite.yaml"


@pytest.fixture
async def rt(lake: Path) -> Any:
    t = Troupe.local(lake=lake)
    t.registry.register(lookup)
    CALLS.clear()
    SIDE_EFFECTS.clear()
    try:
        yield t
    finally:
        await t.shutdown()


async def recorded(rt: Troupe, tmp_path: Path) -> str:
    sweep = Sweep(rt, load_suite(write_suite(tmp_path / "suite")), concurrency=3)
    progress = await sweep.run()
    assert progress.passed == 3 and len(CALLS) == 5 and len(SIDE_EFFECTS) == 2
    CALLS.clear()
    SIDE_EFFECTS.clear()
    return sweep.run_id


async def test_a_fork_after_the_first_tool_result_makes_only_the_late_calls(rt: Troupe, lake: Path, tmp_path: Path) -> None:
    parent = await recorded(rt, tmp_path)
    fork = ForkedSweep(rt, parent, fork_at="after-first-tool-result", grid=parse_sets(["prompt=Shout."]), concurrency=3)
    progress = await fork.run()
    assert progress.done == 3
    # 1 live call per forked sample (the one that reads the tool result) + 1 for the sample run from the start
    assert len(CALLS) == 3 and SIDE_EFFECTS == []
    rows = {r["case_id"]: r for r in results_table(lake, fork.run_id).to_pylist()}
    assert rows["exact"]["reply"] == "THE LOOKUP SAID: 42" and not rows["exact"]["passed"]
    assert rows["any-case"]["passed"] and rows["no-tool"]["reply"] == "NOTHING TO LOOK UP" and rows["no-tool"]["passed"]
    assert json.loads(rows["exact"]["cell"]) == {"prompt": "Shout."}
    assert rows["exact"]["fork_point"] == "after-tool-result:1" and rows["no-tool"]["fork_point"] == "turn:1"
    manifest = read_manifest(lake, fork.run_id)
    assert (manifest.from_run, manifest.fork_at) == (parent, "after-tool-result:1")
    assert manifest.not_forkable == [rows["no-tool"]["sample_id"]] and manifest.status == "finished"

    # Each child names its parent in the lake; the parent is the same case's sample of the recorded run.
    links = connect(lake).sql(f"""
        select c.case_id, json_extract_string(e.payload, '$.forked_from') as parent, p.case_id as parent_case,
               json_extract_string(e.payload, '$.fork_point') as fork_point, c.forked_from
        from results c
        join events e on e.session_id = c.session_id and e.type = 'session.started'
        join results p on p.session_id = json_extract_string(e.payload, '$.forked_from') and p.run_id = '{parent}'
        where c.run_id = '{fork.run_id}' order by c.case_id""").fetchall()
    assert [(c, pc, fp) for c, _, pc, fp, _ in links] == [
        ("any-case", "any-case", "after-tool-result:1"), ("exact", "exact", "after-tool-result:1"),
        ("no-tool", "no-tool", "turn:1")]
    assert all(parent_id == forked_from for _, parent_id, _, _, forked_from in links)

    # docs/replay.md's query of a run's children
    doc = (Path(__file__).resolve().parents[2] / "docs" / "replay.md").read_text()
    sql = doc.split("-- troupe events sql", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    children = connect(lake).sql(sql.replace("CHILD_RUN", fork.run_id)).fetchall()
    assert [(c[0], c[3], c[4], c[5], c[6]) for c in children] == [
        ("any-case", links[0][1], "after-tool-result:1", True, True), ("exact", links[1][1], "after-tool-result:1", True, False),
        ("no-tool", links[2][1], "turn:1", True, True)]

    again = ForkedSweep(rt, parent, fork_at="after-first-tool-result", grid=parse_sets(["prompt=Shout."]))
    assert again.run_id == fork.run_id and (await again.run()).skipped == 3  # the same fork resumes


async def test_a_fork_before_the_second_model_call_with_another_model(rt: Troupe, lake: Path, tmp_path: Path) -> None:
    parent = await recorded(rt, tmp_path)
    fork = ForkedSweep(rt, parent, fork_at="before-llm:2", model="other", concurrency=3)
    await fork.run()
    # the second call of each looked-up sample, then the whole no-tool sample (it made one call only)
    assert sorted(CALLS) == ["a:other"] * 3 and SIDE_EFFECTS == []
    rows = {r["case_id"]: r for r in results_table(lake, fork.run_id).to_pylist()}
    assert rows["exact"]["reply"] == "42." and rows["exact"]["fork_point"] == "before-llm:2"
    assert rows["no-tool"]["reply"] == "nothing." and rows["no-tool"]["fork_point"] == "turn:1"
    assert json.loads(rows["exact"]["cell"]) == {"model": "other"}


async def test_a_replayed_sweep_makes_no_model_call_and_is_identical(rt: Troupe, lake: Path, tmp_path: Path) -> None:
    parent = await recorded(rt, tmp_path)
    replay = ForkedSweep(rt, parent, replay=True, concurrency=3)
    progress = await replay.run()
    assert progress.passed == 3 and CALLS == [] and SIDE_EFFECTS == []
    check = await replay.check()
    assert check.identical == 3 and check.fraction == 1.0, check.diverged
    assert {r["fork_point"] for r in results_table(lake, replay.run_id).to_pylist()} == {"replay"}


async def test_clear_errors(rt: Troupe, lake: Path, tmp_path: Path) -> None:
    parent = await recorded(rt, tmp_path)
    with pytest.raises(StepError, match="unknown fork step 'after-frist-tool-result'"):
        ForkedSweep(rt, parent, fork_at="after-frist-tool-result")
    with pytest.raises(ConfigError, match="either --fork-at"):
        ForkedSweep(rt, parent)
    with pytest.raises(ConfigError, match="need --fork-at"):
        ForkedSweep(rt, parent, replay=True, model="oracle")
    with pytest.raises(ConfigError, match="is not an event of run"):
        await ForkedSweep(rt, parent, fork_at="event:e-nope").run()


def test_the_command_line_refuses_before_anything_starts(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from troupe.runtime.cli.main import main

    assert main(["eval", "run", "--fork-at", "turn:2", "--lake", str(lake)]) == 2
    assert "add --from-run RUN_ID" in capsys.readouterr().err
    assert main(["eval", "run", "--from-run", "r-eval-x", "--fork-at", "before-lm:2", "--lake", str(lake)]) == 2
    assert "unknown fork step 'before-lm:2'" in capsys.readouterr().err
    assert main(["eval", "run", "--lake", str(lake)]) == 2
    assert "needs a suite file" in capsys.readouterr().err
    assert parse_sets(["prompt=Be brief, then stop.", "budgets.max_tokens=500"]) == {
        "prompt": ["Be brief, then stop."], "budgets.max_tokens": [500]}
