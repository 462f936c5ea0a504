"""Sweeps end to end: grid x cases x samples, failures and a crash recorded, interrupt and resume,
the results table, the report, and the compare gate's exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.eval_suites import CASES, write_suite
from troupe.evals.results import done_sample_ids, read_manifest, results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep, expand, sweep_run_id
from troupe.runtime.api import Troupe


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "suite")


def test_expand_is_a_stable_product(suite_file: Path) -> None:
    suite = load_suite(suite_file)
    specs = expand(suite, {"prompt": ["", "Shout."], "seed": [1]}, samples=2)
    assert len(specs) == 2 * len(CASES) * 2
    assert len({s.sample_id for s in specs}) == len(specs)
    assert [s.sample_id for s in expand(suite, {"seed": [1], "prompt": ["", "Shout."]}, 2)] == [s.sample_id for s in specs]
    assert sweep_run_id(suite, {"prompt": ["a"]}, 1) != sweep_run_id(suite, {"prompt": ["b"]}, 1)


async def test_sweep_records_every_sample_and_grades_it(troupe: Troupe, lake: Path, suite_file: Path) -> None:
    sweep = Sweep(troupe, load_suite(suite_file), grid={"prompt": ["", "Shout."]}, concurrency=4)
    progress = await sweep.run()
    assert progress.done == 12 and progress.skipped == 0
    rows = {(json.loads(r["cell"])["prompt"], r["case_id"]): r for r in results_table(lake, sweep.run_id).to_pylist()}
    assert len(rows) == 12
    plain, loud = rows[("", "ok-1")], rows[("Shout.", "ok-1")]
    assert plain["passed"] and plain["score"] == 1.0 and plain["reply"] == "answer to alpha"
    assert loud["reply"] == "LOUD answer to alpha" and loud["passed"]  # contains still holds
    assert not rows[("Shout.", "ok-3")]["passed"]  # exact fails once shouted
    assert not rows[("", "wrong")]["passed"] and rows[("", "wrong")]["status"] == "completed"
    crash = rows[("", "crash")]
    assert crash["status"] == "failed" and "crashed on purpose" in crash["error"] and not crash["passed"]
    bad = rows[("", "bad-override")]
    assert bad["status"] == "error" and "agents.9" in bad["error"]
    assert all(r["session_id"] for k, r in rows.items() if k[1] != "bad-override")
    # Every sample's events are in the lake under the sweep's run id.
    from troupe.runtime.eventlog.lake import query

    sessions = query(lake, f"select count(distinct session_id) n from events where run_id = '{sweep.run_id}'").to_pylist()
    assert sessions == [{"n": 10}]
    manifest = read_manifest(lake, sweep.run_id)
    assert manifest.status == "finished" and manifest.totals["planned"] == 12


async def test_interrupted_sweep_resumes_without_rerunning(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    cases = [{"id": f"c{i}", "input": f"slow {i}", "expect": {"contains": "answer"}} for i in range(12)]
    suite = load_suite(write_suite(tmp_path / "slow", cases))
    first = Sweep(troupe, suite, concurrency=2)
    task = asyncio.create_task(first.run())
    await asyncio.sleep(1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded = done_sample_ids(lake, first.run_id)
    assert 0 < len(recorded) < 12
    assert read_manifest(lake, first.run_id).status == "interrupted"

    again = Sweep(troupe, suite, concurrency=6)
    assert again.run_id == first.run_id  # the same sweep
    progress = await again.run()
    assert progress.skipped == len(recorded) and progress.done == 12 - len(recorded)
    rows = results_table(lake, first.run_id).to_pylist()
    assert sorted(r["case_id"] for r in rows) == sorted(c["id"] for c in cases)  # each once
    assert all(r["passed"] for r in rows)
    assert read_manifest(lake, first.run_id).status == "finished"


async def test_oracle_model_answers_from_the_expectation(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    cases = [{"id": "calc", "input": "what is 2+3?",
              "tools": [{"name": "add", "parameters": {"type": "object", "properties": {
                  "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}],
              "expect": {"tool_calls": [{"name": "add", "arguments": {"a": [2], "b": [3, "3"]}}]}}]
    sweep = Sweep(troupe, load_suite(write_suite(tmp_path / "o", cases)), model="oracle")
    await sweep.run()
    [row] = results_table(lake, sweep.run_id).to_pylist()
    assert row["passed"] and row["score"] == 1.0, row["grades"]
    assert row["tool_calls"] == 1


def test_a_sample_team_keeps_what_its_file_left_unset(tmp_path: Path) -> None:
    """A profile's unset fields stay unset (the local provider picks small-model defaults for
    exactly those), while the cell's own settings are applied."""
    import yaml

    from troupe.evals.sweep import team_for_sample

    folder = tmp_path / "suite"
    write_suite(folder)
    team = yaml.safe_load((folder / "team.yaml").read_text())
    team["models"]["small"] = {"provider": "local", "max_tokens": 64}
    (folder / "team.yaml").write_text(yaml.safe_dump(team))
    suite = load_suite(folder / "suite.yaml")
    [spec] = [s for s in expand(suite, {"prompt": ["Shout."]}, 1) if s.case.id == CASES[0]["id"]]
    out = team_for_sample(suite, spec, None)
    assert out.models["small"].model_fields_set == {"provider", "max_tokens"}
    assert out.agent(out.entry).instructions.endswith("Shout.")


async def test_a_sample_whose_host_died_runs_once_more(troupe: Troupe, lake: Path, suite_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from troupe.runtime.errors import HostLostError

    real = troupe.run_packed
    lost: list[str] = []

    async def flaky(team: object, text: str, **options: object) -> object:
        if text not in lost:  # every sample's first run: its pool host dies under it
            lost.append(text)
            raise HostLostError("the pool host running this sample died")
        return await real(team, text, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(troupe, "run_packed", flaky)
    sweep = Sweep(troupe, load_suite(suite_file), concurrency=4)
    await sweep.run()
    rows = {r["case_id"]: r for r in results_table(lake, sweep.run_id).to_pylist()}
    assert rows["ok-1"]["passed"] and rows["ok-1"]["status"] == "completed"
    assert not any("pool host" in (r["error"] or "") for r in rows.values())
