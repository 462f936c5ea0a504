"""A τ² task as shipped in a suite folder, and the databases it starts from and should end in.

The suite folder ``evals/suites/tau2_<domain>/`` holds ``db.json.gz`` (the domain's initial
database) and ``tasks.json`` (the tasks, as τ²-bench writes them). A task's starting db is the
domain db with the task's ``initial_state`` applied (initialization data, initialization actions,
and the tool calls of its message history); its expected db is that with the ground-truth actions
replayed (a call the tools refuse changes nothing, as in τ²-bench).
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from troupe.evals.tau2.domains import toolkit
from troupe.evals.tau2.domains.common import Db, TauToolError

SUITES = Path(__file__).resolve().parent.parent / "suites"


class Action(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action_id: str
    requestor: str = "assistant"
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    compare_args: list[str] | None = None


class Criteria(BaseModel):
    model_config = ConfigDict(extra="ignore")
    actions: list[Action] | None = None
    env_assertions: list[dict[str, Any]] | None = None
    communicate_info: list[str] | None = None
    nl_assertions: list[str] | None = None
    reward_basis: list[str] = Field(default_factory=lambda: ["DB", "COMMUNICATE"])


class Task(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    user_scenario: dict[str, Any]
    ticket: str | None = None
    initial_state: dict[str, Any] | None = None
    evaluation_criteria: Criteria | None = None


def suite_dir(domain: str) -> Path:
    return SUITES / f"tau2_{domain}"


@functools.cache
def _base_text(domain: str) -> str:
    with gzip.open(suite_dir(domain) / "db.json.gz", "rt", encoding="utf-8") as f:
        return f.read()


def base_db(domain: str) -> Db:
    """A fresh copy of the domain's initial database."""
    return json.loads(_base_text(domain))


@functools.cache
def tasks(domain: str) -> dict[str, Task]:
    raw = json.loads((suite_dir(domain) / "tasks.json").read_text(encoding="utf-8"))
    return {t["id"]: Task.model_validate(t) for t in raw}


def call(domain: str, db: Db, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    """Run tool ``name`` on ``db``: (its answer, whether it failed). A refused call leaves ``db`` as it was."""
    module = toolkit(domain)
    fn = module.TOOLS.get(name)
    if fn is None:
        return f"Error: unknown tool {name!r}", True
    try:
        return fn(db, **arguments), False
    except TauToolError as e:
        return f"Error: {e}", True
    except (TypeError, KeyError, ValueError) as e:
        return f"Error: bad arguments for {name}: {e}", True


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def initial_db(domain: str, task: Task) -> Db:
    """The db a session of ``task`` starts from."""
    db = base_db(domain)
    state = task.initial_state or {}
    data = (state.get("initialization_data") or {}).get("agent_data")
    if data:
        _merge(db, data)
    for action in state.get("initialization_actions") or []:
        if action.get("env_type", "assistant") == "assistant":
            call(domain, db, action["func_name"], action.get("arguments") or {})
    for message in state.get("message_history") or []:
        for tool_call in message.get("tool_calls") or []:
            call(domain, db, tool_call["name"], tool_call.get("arguments") or {})
    return db


def gold_actions(task: Task) -> list[Action]:
    criteria = task.evaluation_criteria
    return [a for a in (criteria.actions or []) if a.requestor == "assistant"] if criteria else []


def expected_db(domain: str, task: Task) -> Db:
    """The db the ground-truth actions leave, replayed on a fresh starting db."""
    db = initial_db(domain, task)
    for action in gold_actions(task):
        call(domain, db, action.name, action.arguments)
    return db


__all__ = ["Action", "Criteria", "Task", "base_db", "call", "expected_db", "gold_actions", "initial_db",
           "suite_dir", "tasks"]
