"""A recorded sweep again: every sample forked at a named step with another grid cell, or replayed.

    troupe eval run --from-run RUN --fork-at after-first-tool-result --set prompt="Be brief."
    sweep = ForkedSweep(troupe, "r-eval-…", fork_at="after-first-tool-result", grid={"prompt": ["Be brief."]})
    await sweep.run()

Each sample of the parent run (its suite and cases, from its manifest and results) becomes, for each
combination of the new ``grid`` (``--grid``, ``--set``; ``--model`` too), a sample whose cell is the
parent's cell with those values. Its session replays the parent sample's record up to the step
(:mod:`troupe.runtime.replay.steps`: model answers and tool results from the lake, no model call, no
tool run) and then runs live on the new cell's team (the suite's team with the cell applied), so a
change to a late prompt costs only the late calls. A parent that never reached the step (fewer tool
results, model calls or turns) is **run from the start** on the new cell (``fork_point`` ``turn:1``)
and listed in the manifest's ``not_forkable``; a parent sample that never ran (an ``error`` row) runs
from the start with no parent. ``replay=True`` (``--replay``) replays every sample on its recorded team
with zero model calls and checks it took the recorded path (:meth:`ForkedSweep.check`).

The new run's results name each sample's parent session (``forked_from``, ``fork_point``), as its
session's ``session.started`` does in the lake; its manifest names ``from_run`` and ``fork_at``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from troupe.evals.models import SampleResult
from troupe.evals.results import RunManifest, read_manifest, results_table
from troupe.evals.run_id import sweep_run_id
from troupe.evals.suite import LoadedSuite, load_suite
from troupe.evals.sweep import Progress, SampleSpec, Sweep, cell_key, input_text
from troupe.runtime.agent.recorded import ReplayPlan
from troupe.runtime.api import validate_team
from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.config import Placement, TeamConfig
from troupe.runtime.errors import ConfigError
from troupe.runtime.ids import RunId, SessionId
from troupe.runtime.replay.batch import load_run_records, read_run_rows, verdict
from troupe.runtime.replay.fork import ForkPoint, fork_plan
from troupe.runtime.replay.record import SessionRecord
from troupe.runtime.replay.steps import ForkStep, StepNotReachedError, parse_step, resolve_step
from troupe.runtime.session.spec import SessionSpec

REPLAY = "replay"
"""``fork_at`` of a run that replays its parent (and ``fork_point`` of its samples)."""
START = ForkPoint(label="turn:1", index=-1, turn=1)
"""Where a sample whose parent never reached the step starts: nothing replayed."""


class RunReplayCheck(BaseModel):
    """How a replayed sweep went against its record (:meth:`ForkedSweep.check`)."""

    run_id: str
    from_run: str
    samples: int
    identical: int
    diverged: dict[str, str] = Field(default_factory=dict)
    """Sample id -> the first divergence (or how the ending differed)."""

    @property
    def fraction(self) -> float:
        return self.identical / self.samples if self.samples else 1.0


def parent_model(manifest: RunManifest) -> str | None:
    """The ``--model`` a recorded sweep ran with (``None``: a model axis in its grid, or the team's default)."""
    if "model" in manifest.grid or len(manifest.models) != 1 or manifest.models[0] == "(team default)":
        return None
    return manifest.models[0]


class ForkedSweep(Sweep):
    """Forks (``fork_at``) or replays (``replay=True``) of every sample of the recorded sweep ``from_run``."""

    def __init__(self, troupe: Any, from_run: str, *, fork_at: str | None = None, replay: bool = False,
                 suite: LoadedSuite | None = None, grid: dict[str, list[Any]] | None = None, model: str | None = None,
                 concurrency: int = 32, run_id: str | None = None, limit: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 approval_policy: ApprovalPolicy | None = None) -> None:
        if (fork_at is None) != replay:
            raise ConfigError("--from-run needs either --fork-at STEP (fork every sample there) or --replay")
        if replay and (grid or model):
            raise ConfigError("a replay runs the recorded samples unchanged: --grid, --set and --model need --fork-at")
        self.step: ForkStep | None = None if fork_at is None else parse_step(fork_at)
        self.from_run = from_run
        self.parent = read_manifest(str(troupe.lake), from_run)
        if suite is None:
            if not self.parent.suite_path:
                raise ConfigError(f"run {from_run} recorded no suite file: pass the suite too", run=from_run)
            suite = load_suite(self.parent.suite_path)
        self.changes = {**(grid or {}), **({"model": [model]} if model is not None else {})}
        self.limit = limit
        fork_at_label = REPLAY if self.step is None else self.step.label
        policy = approval_policy.model_dump(mode="json") if approval_policy is not None else None
        run_id = run_id or sweep_run_id(suite, self.changes, self.parent.samples,
                                        {"from_run": from_run, "fork_at": fork_at_label, "limit": limit,
                                         "approval_policy": policy})
        super().__init__(troupe, suite, grid=self.changes, model=parent_model(self.parent),
                         samples=self.parent.samples, concurrency=concurrency, run_id=run_id,
                         on_progress=on_progress, approval_policy=approval_policy)
        self.fork_at = fork_at_label
        self.records: dict[str, SessionRecord] = {}
        self.parents: dict[str, tuple[str | None, ForkPoint | None]] = {}
        """Sample id -> (the parent session, where the fork leaves it; ``None``: a replay)."""
        self.not_forkable: list[str] = []
        self._specs_planned: list[SampleSpec] | None = None
        self._checked: set[int] = set()
        self._recorded_teams: dict[str, TeamConfig] = {}

    # --- planning -----------------------------------------------------------------------------
    def _load(self) -> None:
        rows = sorted(results_table(self.lake, self.from_run).to_pylist(),
                      key=lambda r: (r["cell"], r["case_id"], r["sample"]))
        self.records = load_run_records(self.lake, self.from_run)
        if self.step is not None and self.step.one_session:
            owner = [sid for sid, rec in self.records.items() if any(r.event_id == self.step.event_id for r in rec.rows)]
            if not owner:
                raise ConfigError(f"event {self.step.event_id!r} is not an event of run {self.from_run}",
                                  run=self.from_run, event=self.step.event_id)
            rows = [r for r in rows if r["session_id"] == owner[0]]  # an event id forks its own sample alone
        rows = rows[: self.limit] if self.limit is not None else rows
        combos = [dict(zip(sorted(self.changes), values, strict=True))
                  for values in itertools.product(*(self.changes[k] for k in sorted(self.changes)))]
        specs: list[SampleSpec] = []
        for row in rows:
            case = self.suite.case(row["case_id"])
            parent = row["session_id"] if row["session_id"] in self.records else None
            point = self._point(parent)
            for combo in combos:
                cell = {**_cell(row["cell"]), **combo}
                key = cell_key(cell)
                digest = hashlib.sha1(f"{self.suite.suite.name}\x1f{key}\x1f{case.id}\x1f{row['sample']}".encode())
                spec = SampleSpec(sample_id=digest.hexdigest()[:16], cell=cell, cell_key=key, case=case,
                                  sample=row["sample"])
                specs.append(spec)
                self.parents[spec.sample_id] = (parent, point)
                if point is START and parent is not None:
                    self.not_forkable.append(spec.sample_id)
        self.grid = _grid_of(specs)
        self._specs_planned = specs

    def _point(self, parent: str | None) -> ForkPoint | None:
        if parent is None:
            return START
        if self.step is None:
            return None
        try:
            return resolve_step(self.records[parent], self.step)
        except StepNotReachedError:
            return START

    def plan(self) -> list[SampleSpec]:
        if self._specs_planned is None:
            self._load()
        assert self._specs_planned is not None
        return self._specs_planned

    async def run(self) -> Progress:
        if self._specs_planned is None:
            await asyncio.to_thread(self._load)
        # The records live as long as the sweep: out of the collector's way (every full collection would
        # walk them all again; a replayed sweep is allocation-heavy, so full collections are frequent).
        gc.collect()
        gc.freeze()
        try:
            return await super().run()
        finally:
            gc.unfreeze()

    # --- one sample ---------------------------------------------------------------------------
    def _team(self, spec: SampleSpec) -> TeamConfig:
        team = super()._team(spec)
        if self.step is not None and id(team) not in self._checked:  # what Troupe.run_packed checks first
            validate_team(team, self.troupe.registry)
            self._checked.add(id(team))
        return team

    async def _run_sample(self, spec: SampleSpec) -> Any:
        parent, point = self.parents[spec.sample_id]
        if parent is None:  # the parent sample never ran: nothing to fork
            return await super()._run_sample(spec)
        record = self.records[parent]
        if point is None:
            team, text = self._recorded_team(record), record.input
            plan = ReplayPlan(source=parent, agents=record.recordings())
            lineage = {"replay_of": parent}
        else:
            team, text = self._team(spec), input_text(spec.case)
            plan = fork_plan(record, point, {})
            lineage = {"forked_from": parent, "fork_point": point.label}
        backend = self.troupe.backend
        session = SessionSpec(session_id=SessionId.new(), run_id=RunId(self.run_id), team=team,
                              placement=Placement.PACKED, checkpoints=backend.checkpoints_for(Placement.PACKED),
                              lake=self.lake, labels={"case_id": spec.case.id, "sample": str(spec.sample)},
                              replay=plan, lineage=lineage)
        return await backend.run_session(session, text, self.suite.suite.timeout_s)

    def _recorded_team(self, record: SessionRecord) -> TeamConfig:
        """The team ``record`` ran, one object per distinct config (as a sweep shares one per cell: the
        runtime prepares a team once, not once per sample)."""
        key = json.dumps(record.config, sort_keys=True, default=str)
        if key not in self._recorded_teams:
            self._recorded_teams[key] = record.team()
        return self._recorded_teams[key]

    async def _row(self, item: Any, calls: list[dict[str, Any]], grade: Any) -> SampleResult:
        row = await super()._row(item, calls, grade)
        parent, point = self.parents.get(item.spec.sample_id, (None, None))
        label = None if parent is None else REPLAY if point is None else point.label
        return row.model_copy(update={"forked_from": parent, "fork_point": label})

    def manifest(self, status: str, progress: Progress) -> Any:
        return super().manifest(status, progress).model_copy(update={
            "from_run": self.from_run, "fork_at": self.fork_at, "not_forkable": list(self.not_forkable)})

    # --- a replay's verdict -------------------------------------------------------------------
    async def check(self) -> RunReplayCheck:
        """After :meth:`run` of a replay: whether each sample took its record's path (the same steps per
        agent, the same service changes, status and reply)."""
        if self.step is not None:
            raise ConfigError("check() compares a replay with its record: this sweep forks (--fork-at)")
        rows = await asyncio.to_thread(read_run_rows, self.lake, self.run_id)
        results = await asyncio.to_thread(lambda: results_table(self.lake, self.run_id).to_pylist())
        diverged: dict[str, str] = {}
        for r in results:
            parent = r["forked_from"]
            if parent is None or parent not in self.records:
                diverged[r["sample_id"]] = f"no record to compare with ({r['status']}: {r['error']})"
                continue
            same, divergence = verdict(self.records[parent], rows.get(r["session_id"] or "", []), r["status"], r["reply"])
            if not same:
                diverged[r["sample_id"]] = divergence.describe() if divergence else \
                    f"ended {r['status']} {r['reply']!r}, recorded {self.records[parent].status} {self.records[parent].reply!r}"
        return RunReplayCheck(run_id=self.run_id, from_run=self.from_run, samples=len(results),
                              identical=len(results) - len(diverged), diverged=diverged)


def _cell(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def _grid_of(specs: list[SampleSpec]) -> dict[str, list[Any]]:
    """The values each cell key takes in ``specs`` (what the run's manifest shows as its grid)."""
    out: dict[str, list[Any]] = {}
    for spec in specs:
        for key, value in spec.cell.items():
            if value not in out.setdefault(key, []):
                out[key].append(value)
    return out


__all__ = ["REPLAY", "START", "ForkedSweep", "RunReplayCheck", "parent_model"]
