"""A sweep's run id: a digest of everything that decides its results.

The same suite settings, cases (inputs and expectations), graders (a ``python:`` grader's module
source included), team content (every team file the cases run on, as loaded, and each case's
overrides), grid, samples and approval policy give the same id, so re-running an unchanged sweep
resumes it; changing any of them starts a new run. Runs of the same suite still line up by case id
in ``troupe eval compare``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from troupe.evals.suite import LoadedSuite


def _grader_source(spec: str) -> str:
    """A digest of the module a ``python:`` grader lives in (its file's bytes), or ``""``."""
    module = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    origin = found.origin if found is not None else None
    if not origin or not Path(origin).is_file():
        return ""
    return hashlib.sha1(Path(origin).read_bytes()).hexdigest()


def run_basis(suite: LoadedSuite, grid: dict[str, list[Any]], samples: int,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the run id digests (JSON-able)."""
    teams = {}
    for case in [None, *suite.cases]:
        path = suite.team_path(case)
        if str(path) not in teams:
            teams[str(path)] = suite.base_team(case).model_dump(mode="json", by_alias=True)
    graders = sorted({c.expect.python for c in suite.cases if c.expect.python})
    return {
        "suite": suite.suite.model_dump(mode="json", by_alias=True),
        "cases": [c.model_dump(mode="json", by_alias=True) for c in suite.cases],
        "teams": sorted(teams.values(), key=lambda t: json.dumps(t, sort_keys=True, default=str)),
        "graders": {spec: _grader_source(spec) for spec in graders},
        "grid": grid,
        "samples": samples,
        **(extra or {}),
    }


def sweep_run_id(suite: LoadedSuite, grid: dict[str, list[Any]], samples: int,
                 extra: dict[str, Any] | None = None) -> str:
    """``r-eval-<12 hex>``: the same suite, cases, graders, teams, grid and samples give the same id."""
    basis = json.dumps(run_basis(suite, grid, samples, extra), sort_keys=True, default=str)
    return f"r-eval-{hashlib.sha1(basis.encode()).hexdigest()[:12]}"


__all__ = ["run_basis", "sweep_run_id"]
