"""Sweeps decide approvals by policy (``--approve yes|no|policy.yaml``), and their run ids cover what
decides the results (issue #13)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.eval_suites import CASES, write_suite
from troupe.evals.cli import approval_policy
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep, sweep_run_id
from troupe.runtime.api import Troupe
from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query

APPROVED = "tests.support.tool_fixtures:approved_write"
DECIDED = ("select session_id, status, json_extract_string(payload, '$.by') by_, "
           "json_extract_string(payload, '$.reason') reason from events where type = 'approval.decided'")


def _gated_suite(folder: Path, targets: dict[str, Path]) -> Path:
    """One case per target file: a scripted agent calls ``approved_write`` (gated) on it (each case
    picks its script with an override)."""
    folder.mkdir(parents=True)
    team = {"name": "gated", "entry": "lead", "default_model": "s", "approval_timeout_s": 30,
            "models": {"s": {"provider": "scripted", "scripts": {"lead": [{"text": "finished"}]}}},
            "agents": [{"id": "lead", "tools": [APPROVED]}]}
    (folder / "team.yaml").write_text(yaml.safe_dump(team))
    cases = [{"id": case_id, "input": case_id, "expect": {"contains": "finished"},
              "overrides": {"models.s.scripts": {"lead": [
                  {"tool_calls": [{"name": "approved_write", "arguments": {"path": str(target)}}]},
                  {"text": "finished"}]}}}
             for case_id, target in targets.items()]
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": "gated", "team": "team.yaml", "timeout_s": 60}))
    return folder / "suite.yaml"


def test_the_approve_flag_reads_yes_no_or_a_policy_file(tmp_path: Path) -> None:
    assert approval_policy(None) is None
    assert approval_policy("yes") == ApprovalPolicy(default="yes")
    assert approval_policy("no") == ApprovalPolicy(default="no")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("default: no\nrules:\n  - tool: 'files__read_*'\n    decision: yes\n"
                           "  - tool: bank__transfer\n    when: {currency: [EUR, USD]}\n    decision: yes\n")
    policy = approval_policy(str(policy_file))
    assert policy is not None
    assert policy.decide("files__read_text", "{}") == (True, "approval policy rule 0 ('files__read_*'): yes")
    assert policy.decide("files__write", "{}") == (False, "approval policy default: no")
    assert policy.decide("bank__transfer", '{"currency": "EUR", "amount": 3}')[0] is True  # type: ignore[index]
    assert policy.decide("bank__transfer", '{"currency": "GBP"}')[0] is False  # type: ignore[index]
    assert policy.decide("bank__transfer", "not json")[0] is False  # type: ignore[index]
    assert ApprovalPolicy(default="ask").decide("anything", "{}") is None
    policy_file.write_text("default: maybe\n")
    with pytest.raises(ConfigError, match="(?s)invalid approval policy.*default"):
        approval_policy(str(policy_file))
    with pytest.raises(ConfigError, match="does not exist"):
        approval_policy(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("flag", ["yes", "no"])
async def test_approve_decides_gated_calls_in_a_sweep_by_policy(troupe: Troupe, tmp_path: Path, flag: str) -> None:
    targets = {f"c{i}": tmp_path / f"out{i}.txt" for i in range(3)}
    suite = load_suite(_gated_suite(tmp_path / "suite", targets))
    sweep = Sweep(troupe, suite, concurrency=3, approval_policy=approval_policy(flag))
    t0 = time.monotonic()
    await sweep.run()
    assert time.monotonic() - t0 < 20  # nobody waited approval_timeout_s (30 s)
    rows = results_table(troupe.lake, sweep.run_id).to_pylist()
    assert len(rows) == 3 and all(r["status"] == "completed" and r["passed"] for r in rows)
    decided = query(troupe.lake, DECIDED).to_pylist()
    assert len(decided) == 3 and {d["by_"] for d in decided} == {"policy"}
    assert {d["status"] for d in decided} == {"approved" if flag == "yes" else "denied"}
    assert all(t.exists() == (flag == "yes") for t in targets.values())


async def test_a_policy_file_with_per_tool_rules(troupe: Troupe, tmp_path: Path) -> None:
    targets = {"allowed": tmp_path / "allowed.txt", "refused": tmp_path / "refused.txt"}
    suite = load_suite(_gated_suite(tmp_path / "suite", targets))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({"default": "no", "rules": [
        {"tool": "approved_*", "when": {"path": str(targets["allowed"])}, "decision": "yes", "reason": "allowed path"},
    ]}))
    sweep = Sweep(troupe, suite, concurrency=2, approval_policy=approval_policy(str(policy_file)))
    await sweep.run()
    decided = {d["reason"]: d["status"] for d in query(troupe.lake, DECIDED).to_pylist()}
    assert decided == {"allowed path": "approved", "approval policy default: no": "denied"}
    assert targets["allowed"].exists() and not targets["refused"].exists()
    # The policy is part of what the run id covers.
    assert sweep.run_id != Sweep(troupe, suite, approval_policy=approval_policy("yes")).run_id


def test_the_run_id_covers_cases_teams_graders_and_grid(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s")
    folder = path.parent

    def run_id(grid: dict[str, list[Any]] | None = None) -> str:
        return sweep_run_id(load_suite(path), grid or {}, 1)

    first = run_id()
    assert run_id() == first  # nothing changed: the same run (a re-run resumes it)
    assert run_id({"prompt": ["a"]}) != first

    changed = [dict(c) for c in CASES]
    changed[0] = {**changed[0], "expect": {"contains": "answer to ALPHA"}}  # only an expectation
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in changed))
    by_expect = run_id()
    assert by_expect != first
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    assert run_id() == first

    team = yaml.safe_load((folder / "team.yaml").read_text())
    team["agents"][0]["instructions"] = "Answer briefly."
    (folder / "team.yaml").write_text(yaml.safe_dump(team))
    by_team = run_id()
    assert by_team not in (first, by_expect)

    suite = yaml.safe_load(path.read_text())
    suite["pass_threshold"] = 0.5
    path.write_text(yaml.safe_dump(suite))
    assert run_id() not in (first, by_expect, by_team)


def test_the_run_id_covers_a_python_graders_source(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s", [{"id": "p", "input": "x", "expect": {"python": "rid_grader:check"}}],
                       python_path=["lib"])
    (tmp_path / "s" / "lib").mkdir()
    grader = tmp_path / "s" / "lib" / "rid_grader.py"
    grader.write_text("def check(sample):\n    return True\n")
    first = sweep_run_id(load_suite(path), {}, 1)
    assert sweep_run_id(load_suite(path), {}, 1) == first
    grader.write_text("def check(sample):\n    return sample.reply == 'x'\n")
    assert sweep_run_id(load_suite(path), {}, 1) != first


@pytest.mark.ray
async def test_approve_yes_on_ray_never_waits(troupe_ray: Troupe, tmp_path: Path) -> None:
    targets = {f"r{i}": tmp_path / f"ray{i}.txt" for i in range(4)}
    suite = load_suite(_gated_suite(tmp_path / "suite", targets))
    sweep = Sweep(troupe_ray, suite, concurrency=4, approval_policy=approval_policy("yes"))
    t0 = time.monotonic()
    await sweep.run()
    assert time.monotonic() - t0 < 25  # packed samples on Ray: decided in the session, not after 30 s
    decided = query(troupe_ray.lake, DECIDED).to_pylist()
    assert len(decided) == 4 and {(d["by_"], d["status"]) for d in decided} == {("policy", "approved")}
    assert all(t.exists() for t in targets.values())
