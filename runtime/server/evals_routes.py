"""Eval routes: start a sweep of a suite in the background, follow its progress, read its pass rates per
cell with the failing samples (each names its session, so the console links to its timeline).

A sweep runs in the server process that accepted it, on that process's runtime (packed placement, as
``troupe eval run``), its samples' sessions owned by the caller. Its results and manifest are written
beside the lake, so any replica answers ``/results`` and (from the manifest, written when it starts and
ends) ``GET /evals/{run_id}``; the live counts come from the process that runs it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from troupe.evals.analysis import OVERALL, cell_label, summary
from troupe.evals.results import EvalStoreError, find_manifest, results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.errors import ConfigError, TroupeError
from troupe.runtime.server.auth import Principal, can_see, principal, require_role
from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.sessions import State
from troupe.runtime.server.sweeps import (
    MAX_FAILING,
    CellResult,
    EvalProgress,
    EvalResults,
    EvalStarted,
    FailingSample,
    StartEval,
    SweepRegistry,
    progress_of,
    resolve_suite,
)

router = APIRouter(tags=["evals"])
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(require_role("user"))]


def registry_of(request: Request) -> SweepRegistry:
    found = getattr(request.app.state, "sweeps", None)
    if found is None:
        found = request.app.state.sweeps = SweepRegistry()
    return found


Registry = Annotated[SweepRegistry, Depends(registry_of)]


def _why(e: BaseException) -> str:
    return e.message if isinstance(e, TroupeError) else str(e)


def _load(state: Any, body: StartEval) -> Any:
    """The suite (under the team folders), its cases cut at ``limit``, on ``team`` if one is given."""
    suite = load_suite(resolve_suite(state.teams.roots, body.suite))
    if body.team:
        team_path = state.teams.path_of(body.team)
        suite.suite = suite.suite.model_copy(update={"team": str(team_path)})
        suite._teams.clear()
        suite.cases = [c.model_copy(update={"team": None}) for c in suite.cases]
        suite.base_team()  # the team must load before anything runs
    if body.limit is not None:
        suite.cases = suite.cases[:body.limit]
    return suite


@router.post("/evals", status_code=202, response_model=EvalStarted)
async def start_eval(body: StartEval, state: State, who: Writer, sweeps: Registry) -> EvalStarted:
    """Start a sweep of ``suite`` (grid x cases x epochs) in the background; re-posting the same sweep
    resumes it (the run id is derived from the suite, grid and samples, as ``troupe eval run``'s)."""
    try:
        suite = await asyncio.to_thread(_load, state, body)
        sweep = Sweep(state.troupe, suite, grid=body.grid, model=body.model, samples=body.epochs,
                      concurrency=body.concurrency, owner=who.user)
    except ConfigError as e:
        raise ApiError(400, f"suite {body.suite!r} cannot be run", _why(e)) from None
    manifest = await asyncio.to_thread(find_manifest, state.lake, sweep.run_id)
    if manifest is not None and not can_see(who, manifest.owner):
        raise ApiError(403, f"sweep {sweep.run_id} belongs to another user", "change the grid, epochs or limit")
    if sweeps.running(sweep.run_id):
        raise ApiError(409, f"sweep {sweep.run_id} is running already", f"follow it: GET /api/v1/evals/{sweep.run_id}")
    sweeps.start(sweep, who.user)
    return EvalStarted(run_id=sweep.run_id)


async def _visible(state: Any, sweeps: SweepRegistry, who: Principal, run_id: str) -> tuple[Any, Any]:
    held = sweeps.live.get(run_id)
    try:
        manifest = await asyncio.to_thread(find_manifest, state.lake, run_id)
    except EvalStoreError:
        manifest = None
    if held is None and manifest is None:
        raise ApiError(404, f"unknown sweep {run_id}", "list sweeps with GET /api/v1/runs")
    owner = held.owner if held is not None else (manifest.owner if manifest is not None else None)
    if not can_see(who, owner):
        raise ApiError(403, f"sweep {run_id} belongs to another user", "a user sees only their own sweeps")
    return held, manifest


@router.get("/evals/{run_id}", response_model=EvalProgress)
async def eval_progress(run_id: str, state: State, who: Reader, sweeps: Registry) -> EvalProgress:
    held, manifest = await _visible(state, sweeps, who, run_id)
    return progress_of(run_id, held, manifest)


def _results(lake: str, run_id: str, suite: str, status: str) -> EvalResults:
    rows = results_table(lake, run_id).to_pylist()
    failing: dict[str, list[FailingSample]] = {}
    for r in rows:
        if not r["passed"] and len(failing.setdefault(r["cell"], [])) < MAX_FAILING:
            failing[r["cell"]].append(FailingSample(
                sample_id=r["sample_id"], case_id=r["case_id"], sample=r["sample"], status=r["status"],
                score=r["score"], error=r["error"], reply=r["reply"], session_id=r["session_id"]))
    cells, overall = [], None
    for c in summary(lake, run_id).to_pylist() if rows else []:
        is_overall = c["cell"] == OVERALL
        cell = CellResult(cell=c["cell"], label="overall" if is_overall else cell_label(c["cell"]),
                          samples=c["samples"], passed=c["passed"], pass_rate=c["pass_rate"], pass_lo=c["pass_lo"],
                          pass_hi=c["pass_hi"], mean_score=c["mean_score"],
                          failing=[] if is_overall else failing.get(c["cell"], []))
        if is_overall:
            overall = cell
        else:
            cells.append(cell)
    return EvalResults(run_id=run_id, suite=suite, status=status, cells=cells, overall=overall)


@router.get("/evals/{run_id}/results", response_model=EvalResults)
async def eval_results(run_id: str, state: State, who: Reader, sweeps: Registry) -> EvalResults:
    """Pass rates per grid cell (with a 95% interval) and each cell's failing samples with their session ids."""
    held, manifest = await _visible(state, sweeps, who, run_id)
    progress = progress_of(run_id, held, manifest)
    try:
        return await asyncio.to_thread(_results, state.lake, run_id, progress.suite, progress.status)
    except EvalStoreError:  # started, nothing recorded yet
        return EvalResults(run_id=run_id, suite=progress.suite, status=progress.status)


__all__ = ["registry_of", "router"]
