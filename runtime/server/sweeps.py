"""Eval sweeps the server runs and reads back: the request and response bodies, the sweeps running in
this process (their live :class:`~troupe.evals.sweep.Progress`), which suite files may be run, and
sweeps as rows of ``GET /api/v1/runs`` (from their manifests beside the lake)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from troupe.evals.results import RunManifest, list_runs
from troupe.evals.sweep import Progress, Sweep
from troupe.runtime.errors import ConfigError
from troupe.runtime.server.models import RunInfo

log = logging.getLogger("troupe.server")
MAX_FAILING = 100
"""Failing samples listed per cell at most."""


class StartEval(BaseModel):
    suite: str
    """A suite YAML file (or a folder holding ``suite.yaml``) under the server's team folders."""
    team: str | None = None
    """Run every case on this team (a name or path under the team folders) instead of the suite's."""
    limit: int | None = Field(default=None, ge=1)
    """Only the suite's first N cases."""
    epochs: int | None = Field(default=None, ge=1)
    """Samples per case and cell (default: the suite's ``samples``)."""
    model: str | None = None
    """Model profile for every cell without a ``model`` axis (``oracle`` answers from each case's expectation)."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Grid axes added to the suite's (``{"model": ["a", "b"]}``)."""
    concurrency: int = Field(default=8, ge=1, le=256)


class EvalStarted(BaseModel):
    run_id: str


class EvalProgress(BaseModel):
    run_id: str
    suite: str
    user: str | None = None
    status: str
    """``running``, ``finished``, ``interrupted`` (the manifest's), or ``failed`` (it could not run)."""
    total: int = 0
    done: int = 0
    """Samples recorded (graded), those of an earlier run of the same sweep included."""
    passed: int = 0
    failed: int = 0
    running: int = 0
    live: bool = False
    """Run by the server process that answered (else read from the run's manifest)."""
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class FailingSample(BaseModel):
    sample_id: str
    case_id: str
    sample: int
    status: str
    score: float | None = None
    error: str | None = None
    reply: str | None = None
    session_id: str | None = None
    """The sample's session: its timeline is ``GET /api/v1/sessions/{session_id}/timeline``."""


class CellResult(BaseModel):
    cell: str
    """The grid cell as JSON (``{"model": "a"}``)."""
    label: str
    samples: int
    passed: int
    pass_rate: float | None
    pass_lo: float | None = None
    pass_hi: float | None = None
    """95% Wilson interval of the pass rate."""
    mean_score: float | None = None
    failing: list[FailingSample] = []


class EvalResults(BaseModel):
    run_id: str
    suite: str
    status: str
    cells: list[CellResult] = []
    overall: CellResult | None = None


@dataclass
class LiveSweep:
    sweep: Sweep
    owner: str
    progress: Progress | None = None
    task: asyncio.Task[Any] | None = None
    error: str | None = None


class SweepRegistry:
    """The sweeps this process started (``app.state.sweeps``)."""

    def __init__(self) -> None:
        self.live: dict[str, LiveSweep] = {}

    def running(self, run_id: str) -> bool:
        held = self.live.get(run_id)
        return held is not None and held.task is not None and not held.task.done()

    def start(self, sweep: Sweep, owner: str) -> LiveSweep:
        held = LiveSweep(sweep=sweep, owner=owner)

        def seen(p: Progress) -> None:
            held.progress = p

        sweep.on_progress = seen
        self.live[sweep.run_id] = held

        async def run() -> None:
            try:
                held.progress = await sweep.run()
            except Exception as e:  # recorded for GET /evals/{run_id}; the manifest says interrupted
                held.error = f"{type(e).__name__}: {e}"
                log.warning("sweep %s failed", sweep.run_id, exc_info=True)

        held.task = asyncio.create_task(run())
        return held

    async def close(self) -> None:
        tasks = [h.task for h in self.live.values() if h.task is not None and not h.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_suite(roots: list[Path], text: str) -> Path:
    """The suite file ``text`` names, under one of ``roots`` (a suite's python graders and function
    models run code: only suites already on disk in the server's folders are run)."""
    given = Path(text.strip()).expanduser()
    if not text.strip():
        raise ConfigError("no suite given: pass a suite YAML file (or its folder) under the server's team folders")
    tried = [given.resolve()] if given.is_absolute() else [(r / given).resolve() for r in roots]
    for path in tried:
        file = path / "suite.yaml" if path.is_dir() else path
        if file.is_file():
            if not any(_within(file, r) for r in roots):
                raise ConfigError(f"suite {text!r} is outside the server's team folders "
                                  f"({', '.join(str(r) for r in roots)})")
            return file
    raise ConfigError(f"suite {text!r} not found under the server's team folders ({', '.join(str(r) for r in roots)})")


def progress_of(run_id: str, held: LiveSweep | None, manifest: RunManifest | None) -> EvalProgress:
    if held is not None:
        p = held.progress
        running = held.task is not None and not held.task.done()
        status = "failed" if held.error else ("running" if running else (manifest.status if manifest else "finished"))
        return EvalProgress(run_id=run_id, suite=held.sweep.suite.suite.name, user=held.owner, status=status,
                            total=p.total if p else 0, done=(p.done + p.skipped) if p else 0,
                            passed=p.passed if p else 0, failed=p.failed if p else 0,
                            running=p.running if p else 0, live=True, error=held.error,
                            created_at=manifest.created_at if manifest else None,
                            updated_at=manifest.updated_at if manifest else None)
    assert manifest is not None
    t = manifest.totals or {}
    return EvalProgress(run_id=run_id, suite=manifest.suite, user=manifest.owner, status=manifest.status,
                        total=int(t.get("planned", 0)), done=int(t.get("done", 0)), passed=int(t.get("passed", 0)),
                        failed=int(t.get("failed", 0)), created_at=manifest.created_at, updated_at=manifest.updated_at)


def sweep_runs(lake: str, user: str | None, limit: int) -> list[RunInfo]:
    """Sweeps recorded beside ``lake`` as ``GET /runs`` rows, newest first (``user``: only theirs)."""
    out = []
    for m in list_runs(lake):
        if user is not None and m.owner != user:
            continue
        out.append(RunInfo(kind="sweep", session_id="", run_id=m.run_id, team=m.suite, user=m.owner, status=m.status,
                           started_at=m.created_at, finished_at=None if m.status == "running" else m.updated_at,
                           events=int((m.totals or {}).get("done", 0))))
        if len(out) >= limit:
            break
    return out


__all__ = ["CellResult", "EvalProgress", "EvalResults", "EvalStarted", "FailingSample", "LiveSweep", "StartEval",
           "SweepRegistry", "progress_of", "resolve_suite", "sweep_runs"]
