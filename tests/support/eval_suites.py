"""A small eval suite on a deterministic model, written into a folder (for sweep and CLI tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CASES = [
    {"id": "ok-1", "input": "alpha", "expect": {"contains": "answer to alpha"}, "tags": ["easy"]},
    {"id": "ok-2", "input": "beta", "expect": {"regex": "answer to b.ta"}},
    {"id": "ok-3", "input": "gamma", "expect": {"exact": "answer to gamma"}, "required": True},
    {"id": "wrong", "input": "delta", "expect": {"contains": "something else"}},
    {"id": "crash", "input": "crash please", "expect": {"contains": "answer"}},
    {"id": "bad-override", "input": "eps", "overrides": {"agents.9.instructions": "x"}, "expect": {"contains": "x"}},
]


def write_suite(folder: Path, cases: list[dict[str, Any]] = CASES, **suite: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": "t", "entry": "solo", "default_model": "fn",
        "models": {"fn": {"provider": "function", "function": "tests.evals.sweep_model:reply"}},
        "agents": [{"id": "solo", "instructions": "Answer."}],
    }))
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": "small", "team": "team.yaml", "cases": "cases.jsonl",
                                                       "timeout_s": 20, **suite}))
    return folder / "suite.yaml"
