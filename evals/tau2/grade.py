"""Scoring a τ² sample as τ²-bench scores it: the task's ``reward_basis`` decides which checks count,
and the reward is their product (each is 0 or 1).

* ``DB``: the final db equals the db the ground-truth actions produce on a fresh starting db;
* ``COMMUNICATE``: every ``communicate_info`` string is in the agent's replies to the user, over the
  whole conversation (lower-cased, commas dropped from the replies, as τ²-bench does);
* ``ACTION``: every ground-truth action was called (``compare_args`` picks the arguments compared;
  ``transfer_to_human_agents`` matches on its name);
* ``ENV_ASSERTION``: the task's assertion functions hold on the final db;
* ``NL_ASSERTION`` needs an LLM judge: it is **not scored** here (said in the explanation).

``grade_mock`` / ``grade_airline`` / ``grade_retail`` are the suites' ``python:`` graders. The final
db comes from the environment's captured state (``final_state["db"]``) when the sample has one, else
from ``db.json`` in the environment's directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from troupe.evals.models import Grade, GradeInput
from troupe.evals.tau2.domains import toolkit
from troupe.evals.tau2.domains.common import Db, db_hash
from troupe.evals.tau2.task import Action, Task, expected_db, tasks

DB_FILE = "db.json"


def _same(a: Any, b: Any) -> bool:
    """Deep equality with lists compared as multisets and 1 == 1.0 (τ²-bench's action matching)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        left = list(b)
        for item in a:
            match = next((i for i, other in enumerate(left) if _same(item, other)), None)
            if match is None:
                return False
            left.pop(match)
        return True
    return bool(a == b)


def _short(name: str) -> str:
    """A tool's own name from the name the agent saw (``tau2__create_task`` -> ``create_task``)."""
    return name.rsplit("__", 1)[-1]


def action_done(action: Action, calls: list[dict[str, Any]]) -> bool:
    for c in calls:
        if _short(str(c.get("name", ""))) != action.name:
            continue
        if action.name == "transfer_to_human_agents" or action.compare_args == []:
            return True
        args = c.get("arguments") or {}
        keys = action.compare_args
        if keys is None and _same(args, action.arguments):
            return True
        if keys and _same({k: args.get(k) for k in keys}, {k: action.arguments.get(k) for k in keys}):
            return True
    return False


def score(domain: str, task: Task, final_db: Db | None, replies: list[str],
          calls: list[dict[str, Any]]) -> Grade:
    """The τ² reward of one sample of ``task``."""
    criteria = task.evaluation_criteria
    if criteria is None:
        return Grade(grader="python", score=1.0, passed=True, explanation="task has no evaluation criteria")
    failed: list[str] = []
    notes: list[str] = []
    basis = set(criteria.reward_basis)
    if "DB" in basis:
        if final_db is None:
            failed.append("DB: no final db was captured")
        elif db_hash(final_db) != db_hash(expected_db(domain, task)):
            failed.append("DB: the final db differs from the one the ground-truth actions produce")
    if "COMMUNICATE" in basis:
        said = "\n".join(replies).lower().replace(",", "")
        missing = [i for i in criteria.communicate_info or [] if i.lower() not in said]
        if missing:
            failed.append(f"COMMUNICATE: not told to the user: {missing}")
    if "ACTION" in basis:
        undone = [a.action_id for a in criteria.actions or [] if a.requestor == "assistant"
                  and not action_done(a, calls)]
        if undone:
            failed.append(f"ACTION: not called: {undone}")
    if "ENV_ASSERTION" in basis:
        checks = getattr(toolkit(domain), "ASSERTIONS", {})
        for a in criteria.env_assertions or []:
            fn = checks.get(a["func_name"])
            held = fn is not None and final_db is not None and bool(fn(final_db, **a.get("arguments", {})))
            if held != a.get("assert_value", True):
                failed.append(f"ENV_ASSERTION: {a['func_name']}({a.get('arguments')}) is not {a.get('assert_value', True)}")
    if "NL_ASSERTION" in basis:
        notes.append("NL_ASSERTION not scored (needs an LLM judge)")
    passed = not failed
    shown = "; ".join(failed or [f"{'+'.join(sorted(basis))} all hold"]) + "".join(f"; {n}" for n in notes)
    return Grade(grader="python", score=1.0 if passed else 0.0, passed=passed, explanation=shown)


def final_db_of(inp: GradeInput) -> Db | None:
    state = getattr(inp, "final_state", None)
    if isinstance(state, dict) and isinstance(state.get("db"), dict):
        return state["db"]
    env_dir = getattr(inp, "env_dir", None)
    if env_dir and (Path(env_dir) / DB_FILE).is_file():
        return json.loads((Path(env_dir) / DB_FILE).read_text(encoding="utf-8"))
    return None


def replies_of(inp: GradeInput) -> list[str]:
    """Everything the agent told the user in the conversation: each turn's reply (``turn.finished``),
    every message the entry agent sent the user, and the final reply."""
    state = getattr(inp, "final_state", None)
    said = list(state.get("replies", [])) if isinstance(state, dict) else []
    entry = str((inp.team or {}).get("entry", "agent"))
    for event in inp.events:
        payload = event.data
        if event.type == "turn.finished":
            said.append(str(payload.get("reply") or ""))
        elif event.type == "message.sent" and event.agent == entry and payload.get("to") == "user":
            said.append(str(payload.get("content") or ""))
    return [*said, inp.reply or ""]


def _grade(domain: str, inp: GradeInput) -> Grade:
    task = tasks(domain).get(inp.case.id)
    if task is None:
        return Grade(grader="python", score=0.0, passed=False, explanation=f"no τ² {domain} task {inp.case.id!r}")
    return score(domain, task, final_db_of(inp), replies_of(inp), inp.tool_calls)


def grade_mock(inp: GradeInput) -> Grade:
    return _grade("mock", inp)


def grade_airline(inp: GradeInput) -> Grade:
    return _grade("airline", inp)


def grade_retail(inp: GradeInput) -> Grade:
    return _grade("retail", inp)


__all__ = ["action_done", "final_db_of", "grade_airline", "grade_mock", "grade_retail", "replies_of", "score"]
