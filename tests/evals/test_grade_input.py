"""Graders see everything (issue #13): the sample, the team as run, the session's events; python
graders are checked when the suite loads, may be async, never block the sweep's loop, and may live
in a suite-local folder named by ``python_path``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.eval_suites import write_suite
from troupe.evals.grade_python import grade_python
from troupe.evals.models import Case, GradeInput
from troupe.evals.results import results_table
from troupe.evals.suite import CaseError, load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe

GRADERS = '''
import asyncio, time

def needs_two(sample, extra):
    return True

async def async_ok(sample):
    await asyncio.sleep(0.01)
    return sample.reply == "answer to " + sample.case.input

def sync_slow(sample):
    time.sleep(0.4)
    return sample.status == "completed"

def sees_all(sample):
    types = [e.type for e in sample.events]
    ok = (sample.team["entry"] == "solo" and sample.sample in (0, 1) and "session.started" in types
          and "session.finished" in types and sample.final_state is None and sample.env_dir is None)
    return 1.0 if ok else 0.0
'''

MODEL = '''
def reply(request, agent):
    text = next(m.content for m in request.messages if m.role == "user") or ""
    return "answer to " + text
'''


def _suite(folder: Path, module: str, cases: list[dict], *, local_model: bool = False) -> Path:
    """A suite whose graders (and, with ``local_model``, its model) live in ``folder/lib/``."""
    path = write_suite(folder, cases, python_path=["lib"])
    (folder / "lib").mkdir()
    (folder / "lib" / f"{module}.py").write_text(GRADERS)
    if local_model:
        (folder / "lib" / f"{module}_model.py").write_text(MODEL)
        team = yaml.safe_load((folder / "team.yaml").read_text())
        team["models"]["fn"]["function"] = f"{module}_model:reply"
        (folder / "team.yaml").write_text(yaml.safe_dump(team))
    return path


def test_a_grader_typo_fails_at_load_naming_the_case_and_path(tmp_path: Path) -> None:
    cases = [{"id": "fine", "input": "a", "expect": {"python": "gi_typo:async_ok"}},
             {"id": "typo", "input": "b", "expect": {"python": "gi_typo:async_okk"}}]
    path = _suite(tmp_path / "s", "gi_typo", cases)
    with pytest.raises(CaseError) as err:
        load_suite(path)
    assert "case 'typo'" in err.value.message and "gi_typo:async_okk" in err.value.message
    assert "cases.jsonl:2" in err.value.message and "no attribute 'async_okk'" in err.value.message

    (tmp_path / "s" / "cases.jsonl").write_text(json.dumps({"id": "mod", "input": "a",
                                                            "expect": {"python": "gi_tpyo:async_ok"}}) + "\n")
    with pytest.raises(CaseError, match="cannot import module 'gi_tpyo'.*python_path"):
        load_suite(path)
    (tmp_path / "s" / "cases.jsonl").write_text(json.dumps({"id": "args", "input": "a",
                                                            "expect": {"python": "gi_typo:needs_two"}}) + "\n")
    with pytest.raises(CaseError, match=r"case 'args'.*must take one argument.*\(sample, extra\)"):
        load_suite(path)


def test_a_grader_typo_stops_eval_run_before_any_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from troupe.runtime.cli.main import main

    connected: list[object] = []

    async def connect(*args: object, **kwargs: object) -> None:
        connected.append(kwargs)
        raise AssertionError("no runtime may start for a suite that fails to load")

    monkeypatch.setattr(Troupe, "connect", connect)
    cases = [{"id": "typo", "input": "b", "expect": {"python": "gi_cli:nope"}}]
    path = _suite(tmp_path / "s", "gi_cli", cases)
    assert main(["eval", "run", str(path), "--lake", str(tmp_path / "lake")]) == 2
    assert connected == [] and "case 'typo'" in capsys.readouterr().err


async def test_async_and_sync_graders_and_a_slow_one_does_not_block_the_loop(tmp_path: Path) -> None:
    load_suite(_suite(tmp_path / "s", "gi_kinds", [{"id": "c", "input": "x"}]))  # puts lib/ on sys.path
    inp = GradeInput(case=Case(id="c", input="x"), reply="answer to x", status="completed", session_id="",
                     run_id="r", lake=str(tmp_path / "lake"))
    assert (await grade_python(inp, "gi_kinds:async_ok")).passed
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    t0 = time.monotonic()
    grades = await asyncio.gather(*(grade_python(inp, "gi_kinds:sync_slow") for _ in range(3)))
    elapsed = time.monotonic() - t0
    beat.cancel()
    assert all(g.passed for g in grades)
    assert ticks >= 10  # the loop kept running while three 0.4 s graders slept
    assert elapsed < 1.0  # in threads, side by side, not one after another


async def test_a_sweep_grades_with_everything_and_suite_local_modules(troupe: Troupe, tmp_path: Path) -> None:
    cases = [{"id": "all", "input": "alpha", "expect": {"python": "gi_sweep:sees_all"}},
             {"id": "async", "input": "beta", "expect": {"python": "gi_sweep:async_ok"}},
             {"id": "slow", "input": "gamma", "expect": {"python": "gi_sweep:sync_slow"}}]
    suite = load_suite(_suite(tmp_path / "s", "gi_sweep", cases, local_model=True))
    assert str((tmp_path / "s" / "lib").resolve()) in sys.path
    sweep = Sweep(troupe, suite, samples=2, concurrency=6)
    progress = await sweep.run()
    rows = results_table(troupe.lake, sweep.run_id).to_pylist()
    assert progress.done == 6 and len(rows) == 6
    assert all(r["passed"] for r in rows), [(r["case_id"], r["grades"], r["error"]) for r in rows]


@pytest.mark.ray
async def test_suite_local_function_model_and_grader_on_ray(troupe_ray: Troupe, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    cases = [{"id": "all", "input": "alpha", "expect": {"python": "gi_ray:sees_all"}},
             {"id": "async", "input": "beta", "expect": {"python": "gi_ray:async_ok"}}]
    suite = load_suite(_suite(tmp_path / "s", "gi_ray", cases, local_model=True))
    sweep = Sweep(troupe_ray, suite, concurrency=2)
    await sweep.run()
    rows = results_table(troupe_ray.lake, sweep.run_id).to_pylist()
    assert len(rows) == 2
    assert all(r["status"] == "completed" and r["passed"] for r in rows), [(r["error"], r["grades"]) for r in rows]
