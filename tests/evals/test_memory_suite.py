"""The memory suite (evals/suites/memory) on its deterministic model: the five behaviours across turns and
sessions all pass; with memory taken away from the agent, the ones that need it fail."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

SUITE = Path(__file__).resolve().parents[2] / "evals/suites/memory"


def runner() -> Any:
    sys.path.insert(0, str(SUITE))
    spec = importlib.util.spec_from_file_location("memory_suite_runner", SUITE / "run_suite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_memory_suite_passes_on_the_deterministic_model(tmp_path: Path) -> None:
    out = await runner().run_suite(tmp_path / "lake", "det", timeout=20)
    assert {c["behaviour"] for c in out["results"]} >= {"remember", "recall in a later turn", "recall in a later session",
                                                         "overwrite", "recall despite distractors"}
    assert out["score"] == 1.0, [c for c in out["results"] if not c["passed"]]


async def test_without_memory_the_suite_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = runner()
    from troupe.runtime.config import TeamConfig

    real = module.run_case

    async def forgetful(troupe: Any, team: TeamConfig, case: dict[str, Any], timeout: float) -> dict[str, Any]:
        agents = [a.model_copy(update={"memory": "session"}) for a in team.agents]  # nothing outlives a session
        return await real(troupe, team.model_copy(update={"agents": agents}), case, timeout)

    monkeypatch.setattr(module, "run_case", forgetful)
    out = await module.run_suite(tmp_path / "lake", "det", timeout=20)
    failed = {c["id"] for c in out["results"] if not c["passed"]}
    assert {"later_session", "overwrite", "distractors"} <= failed


def test_troupe_eval_run_on_the_memory_folder_points_at_its_runner() -> None:
    from troupe.evals.suite import SuiteError, load_suite

    with pytest.raises(SuiteError, match=r"its own runner instead: python .*evals/suites/memory/run_suite.py"):
        load_suite(SUITE)
