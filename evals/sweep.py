"""Sweeps: a suite's cases x a grid of settings x samples, run as sessions across the cluster.

``expand`` turns a suite and a grid into samples, each with a stable id; ``Sweep.run`` runs the
ones not yet recorded (so an interrupted sweep resumes where it stopped), with at most
``concurrency`` sessions at once on packed placement, grades each against its case, and appends
one row per sample to the results table beside the lake. Every sample's events land in the lake
under the sweep's run id.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from troupe.evals.models import Case, GradeInput, SampleResult
from troupe.evals.run_id import sweep_run_id
from troupe.evals.suite import LoadedSuite, apply_overrides, load_suite
from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.config import ModelProfile, ScriptStep, ScriptToolCall, TeamConfig, parse_team
from troupe.runtime.errors import ConfigError, HostLostError

ORACLE = "oracle"
"""A model name for sweeps: a scripted model that answers each case from its own expectation (to
check a suite and its graders, not a model)."""
HOST_LOST_ATTEMPTS = 2
"""Runs of a sample whose pool host died under it (Ray restarts the host) before it is recorded as an error."""
GRADE_BATCH = 200
GRADE_EVERY_S = 2.0
GRADE_CONCURRENCY = 16
"""Samples of one batch graded at once (python graders run in threads, judges call models)."""


class SampleSpec(BaseModel):
    sample_id: str
    cell: dict[str, Any]
    cell_key: str
    case: Case
    sample: int


def cell_key(cell: dict[str, Any]) -> str:
    return json.dumps(cell, sort_keys=True, default=str)


def expand(suite: LoadedSuite, grid: dict[str, list[Any]], samples: int) -> list[SampleSpec]:
    """Every (cell, case, sample index): the grid's product in a stable order."""
    keys = sorted(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cell = dict(zip(keys, values, strict=True))
        key = cell_key(cell)
        for case in suite.cases:
            for k in range(samples):
                digest = hashlib.sha1(f"{suite.suite.name}\x1f{key}\x1f{case.id}\x1f{k}".encode()).hexdigest()[:16]
                out.append(SampleSpec(sample_id=digest, cell=cell, cell_key=key, case=case, sample=k))
    return out


def input_text(case: Case) -> str:
    if isinstance(case.input, str):
        return case.input
    turns = case.input
    if len(turns) == 1:
        return turns[0].content
    return "\n\n".join(f"{t.role}: {t.content}" for t in turns)


def oracle_profile(case: Case, entry: str) -> ModelProfile:
    """A scripted model that makes the case's expected tool calls (the first acceptable value of each
    argument, leaving out the optional ones), then answers with its expected text."""
    expect = case.expect
    steps: list[ScriptStep] = []
    if expect.tool_calls:
        from troupe.evals.grade_calls import oracle_arguments

        calls = [ScriptToolCall(name=c.name, arguments=oracle_arguments(c)) for c in expect.tool_calls]
        steps.append(ScriptStep(tool_calls=calls))
    text = expect.exact or (" ".join(expect.contains) if expect.contains else None)
    if text is None and expect.json_value is not None:
        text = json.dumps(expect.json_value)
    steps.append(ScriptStep(text=text or "done"))
    return ModelProfile(provider="scripted", scripts={entry: steps, "*": [ScriptStep(text="done")]})


def team_for_sample(suite: LoadedSuite, spec: SampleSpec, model: str | None,
                    approval_policy: ApprovalPolicy | None = None) -> TeamConfig:
    """The case's team with the cell's settings applied: ``model`` picks a profile (``oracle``,
    ``local``, or one of the team's), ``prompt`` is added to the entry agent's instructions,
    ``seed`` goes to every OpenAI-compatible profile, and any other key is a team field path.
    The suite's ``python_path`` goes to every function profile (so hosts on Ray find its modules)
    and ``approval_policy``, when given, decides the team's gated tool calls."""
    out = _team_for_sample(suite, spec, model)
    if suite.python_path:
        models = {name: p.model_copy(update={"python_path": [*suite.python_path, *p.python_path]})
                  if p.provider == "function" else p for name, p in out.models.items()}
        out = out.model_copy(update={"models": models})
    if approval_policy is not None:
        out = out.model_copy(update={"approval_policy": approval_policy})
    return out


def _team_for_sample(suite: LoadedSuite, spec: SampleSpec, model: str | None) -> TeamConfig:
    team = suite.team_for(spec.case)
    data = team.model_dump(by_alias=True, exclude_unset=True)
    entry = next(i for i, a in enumerate(data["agents"]) if a["id"] == team.entry)
    for key, value in spec.cell.items():
        if key == "model":
            continue
        if key == "prompt":
            agent = data["agents"][entry]
            agent["instructions"] = f"{agent.get('instructions', '')}\n\n{value}".strip()
        elif key == "seed":
            for profile in data["models"].values():
                if profile.get("provider", "openai") in ("openai", "local"):
                    profile.setdefault("extra_body", {})["seed"] = value
        else:
            data = apply_overrides(data, {key: value})
    if spec.case.tools:
        data["declared_tools"] = [*data.get("declared_tools", []), *(t.model_dump() for t in spec.case.tools)]
        agent = data["agents"][entry]
        agent["tools"] = [*agent.get("tools", []), *(t.name for t in spec.case.tools)]
    out = parse_team(data, source=f"{suite.suite.name} case {spec.case.id}")
    chosen = spec.cell.get("model", model)
    if chosen == ORACLE:
        own = out.models.get(ORACLE)
        # a team's own function-model oracle (τ²'s replays the task's actions) is kept as it is
        scripted = own if own is not None and own.provider == "function" else oracle_profile(spec.case, str(out.entry))
        models = {**out.models, ORACLE: scripted}
        agents = [a.model_copy(update={"model": ORACLE}) for a in out.agents]
        return out.model_copy(update={"models": models, "agents": agents, "default_model": ORACLE})
    if chosen:
        return out.with_model(str(chosen))
    return out


def _env_dir(result: Any) -> str | None:
    """The sample's environment directory, if the session had one (``SessionResult.env_dir`` or
    ``sample_dir``, or the ``final_state``'s ``sample_dir``)."""
    for name in ("env_dir", "sample_dir"):
        value = getattr(result, name, None)
        if value:
            return str(value)
    state = getattr(result, "final_state", None)
    return str(state["sample_dir"]) if isinstance(state, dict) and state.get("sample_dir") else None


@dataclass
class Progress:
    """A sweep's counts so far, handed to its ``on_progress`` callback as they move."""

    total: int
    skipped: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    passed: int = 0
    started: float = field(default_factory=time.monotonic)
    finish_s: tuple[float, float] = (0.0, 0.0)
    """Seconds the end of the sweep took: grading the last batch, then compacting events and results."""
    run_id: str = ""
    suite: str = ""
    """The sweep's run id and suite name (what a progress callback reports them under)."""

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        left = self.total - self.skipped - self.done
        eta = f"{left / self.rate:.0f}s" if self.rate > 0 else "?"
        skipped = f" ({self.skipped} already recorded)" if self.skipped else ""
        return (f"[eval] {self.done + self.skipped}/{self.total}{skipped} · {self.running} running · "
                f"{self.failed} failed · {self.passed} passed · {self.rate:.1f}/s · ETA {eta}")


@dataclass
class _Finished:
    spec: SampleSpec
    status: str
    reply: str | None = None
    error: str | None = None
    session_id: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    final_state: dict[str, Any] | None = None
    env_dir: str | None = None
    latency_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Sweep:
    def __init__(self, troupe: Any, suite: LoadedSuite, *, grid: dict[str, list[Any]] | None = None,
                 model: str | None = None, samples: int | None = None, concurrency: int = 32,
                 run_id: str | None = None, on_progress: Callable[[Progress], None] | None = None,
                 approval_policy: ApprovalPolicy | None = None, owner: str | None = None) -> None:
        self.troupe = troupe
        self.owner = owner
        """The user the sweep and its samples' sessions belong to (started over ``troupe serve``)."""
        self.suite = suite
        self.grid = {**suite.suite.grid, **(grid or {})}
        self.model = model
        self.samples = samples or suite.suite.samples
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.approval_policy = approval_policy
        """Decides every sample's gated tool calls (``troupe eval run --approve``); None: they wait."""
        policy = approval_policy.model_dump(mode="json") if approval_policy is not None else None
        self.run_id = run_id or sweep_run_id(suite, {**self.grid, "_model": [model]}, self.samples,
                                             {"approval_policy": policy} if policy is not None else None)
        self.on_progress = on_progress or (lambda p: None)
        """Called with the :class:`Progress` as it moves (``troupe eval run`` also feeds the Ray
        dashboard's ``troupe_sweep_samples`` gauges from it)."""
        self.lake = str(troupe.lake)
        self._teams: dict[tuple[str, ...], TeamConfig] = {}
        self._pending: list[_Finished] = []
        self._flush_lock = asyncio.Lock()

    # --- one sample -------------------------------------------------------------------------
    def _team(self, spec: SampleSpec) -> TeamConfig:
        """Built once per distinct (cell, team file, overrides, tools, expectation if oracle): cases
        that share a team share one object, which the runtime validates once."""
        case = spec.case
        oracle = spec.cell.get("model", self.model) == ORACLE
        key = (spec.cell_key, case.team or "", json.dumps(case.overrides, sort_keys=True, default=str),
               json.dumps([t.model_dump() for t in case.tools], sort_keys=True),
               case.expect.model_dump_json() if oracle else "")
        if key not in self._teams:
            self._teams[key] = team_for_sample(self.suite, spec, self.model, self.approval_policy)
        return self._teams[key]

    async def _one(self, spec: SampleSpec, progress: Progress) -> None:
        """Run one sample and queue it for grading; a crash is recorded as its result."""
        progress.running += 1
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        try:
            for attempt in range(1, HOST_LOST_ATTEMPTS + 1):
                try:
                    result = await self._run_sample(spec)
                    break
                except HostLostError:  # its pool host died under it (not the sample's fault): once more
                    if attempt == HOST_LOST_ATTEMPTS:
                        raise
            done = _Finished(spec, str(result.status), result.reply, result.error, str(result.session_id),
                             result.usage.model_dump(), getattr(result, "final_state", None),
                             _env_dir(result), result.duration_s, result.started_at, result.finished_at)
        except Exception as e:  # a sample that crashes is recorded, and the sweep goes on
            done = _Finished(spec, "error", error=f"{type(e).__name__}: {e}", latency_s=time.monotonic() - t0,
                             started_at=started_at, finished_at=datetime.now(UTC))
        finally:
            progress.running -= 1
        self._pending.append(done)

    async def _run_sample(self, spec: SampleSpec) -> Any:
        """One session of ``spec``, start to finish (a fork of a recorded sweep runs its own: evals/sweep_fork.py)."""
        return await self.troupe.run_packed(self._team(spec), input_text(spec.case), run_id=self.run_id,
                                            timeout=self.suite.suite.timeout_s,
                                            labels={"case_id": spec.case.id, "sample": str(spec.sample)},
                                            **({"owner": self.owner} if self.owner else {}))

    # --- grading and recording ----------------------------------------------------------------
    async def _record(self, progress: Progress, *, force: bool = False) -> None:
        """Grade what finished and append it to the results table (a batch at a time)."""
        from troupe.evals.graders import grade
        from troupe.evals.results import write_results

        async with self._flush_lock:
            if not self._pending or (not force and len(self._pending) < GRADE_BATCH):
                return
            batch, self._pending = self._pending, []
            await self.troupe.backend.flush()
            # Only graders that look at tool calls need the lake read back (tool_calls, python).
            wants = [b.session_id for b in batch
                     if b.session_id and (b.spec.case.expect.tool_calls is not None or b.spec.case.expect.python)]
            calls = self._tool_calls(wants)
            gate = asyncio.Semaphore(GRADE_CONCURRENCY)

            async def row(item: _Finished) -> SampleResult:
                async with gate:
                    return await self._row(item, calls.get(item.session_id or "", []), grade)
            rows = list(await asyncio.gather(*(row(item) for item in batch)))
            write_results(self.lake, rows)
            progress.done += len(rows)
            progress.failed += sum(1 for r in rows if r.status != "completed")
            progress.passed += sum(1 for r in rows if r.passed)
            self.on_progress(progress)

    def _tool_calls(self, session_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        from troupe.runtime.eventlog.lake import query

        if not session_ids:
            return {}
        ids = ", ".join(f"'{s}'" for s in session_ids)
        rows = query(self.lake, f"""
            select session_id, tool, json_extract_string(payload, '$.arguments') args
            from events where run_id = '{self.run_id}' and type = 'tool.call' and session_id in ({ids})
            order by ts, seq""").to_pylist()
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            try:
                args = json.loads(r["args"] or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": r["args"]}
            out.setdefault(r["session_id"], []).append({"name": r["tool"], "arguments": args})
        return out

    async def _row(self, item: _Finished, calls: list[dict[str, Any]], grade: Any) -> SampleResult:
        spec, s = item.spec, self.suite.suite
        inp = GradeInput(case=spec.case, reply=item.reply, status=item.status, session_id=item.session_id or "",
                         run_id=self.run_id, lake=self.lake, tool_calls=calls, sample=spec.sample, cell=spec.cell,
                         team=self._team_dump(spec), final_state=item.final_state, env_dir=item.env_dir)
        try:
            score, passed, grades = await grade(inp, weights=s.weights, pass_threshold=s.pass_threshold,
                                                models=self._team(spec).models)
            grades_json = json.dumps([g.model_dump() for g in grades])
        except Exception as e:  # a grader's bug is recorded against the sample, not the sweep
            score, passed, grades_json = 0.0, False, json.dumps([{"grader": "error", "score": 0, "passed": False,
                                                                  "explanation": f"{type(e).__name__}: {e}"}])
        usage = item.usage
        return SampleResult(
            run_id=self.run_id, suite=s.name, sample_id=spec.sample_id, cell=spec.cell_key, case_id=spec.case.id,
            sample=spec.sample, tags=spec.case.tags, required=spec.case.required, weight=spec.case.weight,
            status=item.status, error=item.error, reply=item.reply, score=score, passed=passed, grades=grades_json,
            tokens=usage.get("tokens", 0), llm_calls=usage.get("llm_calls", 0), tool_calls=usage.get("tool_calls", 0),
            latency_s=item.latency_s, session_id=item.session_id, started_at=item.started_at,
            finished_at=item.finished_at,
        )

    def _team_dump(self, spec: SampleSpec) -> dict[str, Any] | None:
        try:
            return self._team(spec).model_dump(mode="json", by_alias=True)
        except ConfigError:
            return None  # the case's overrides do not fit its team: the sample never ran

    # --- the whole sweep ----------------------------------------------------------------------
    def plan(self) -> list[SampleSpec]:
        """Every sample of the sweep (a fork of a recorded sweep plans from its parent's samples)."""
        return expand(self.suite, self.grid, self.samples)

    async def run(self) -> Progress:
        from troupe.evals.results import done_sample_ids, write_manifest

        specs = self.plan()
        done = done_sample_ids(self.lake, self.run_id)
        todo = [s for s in specs if s.sample_id not in done]
        progress = Progress(total=len(specs), run_id=self.run_id, suite=self.suite.suite.name,
                            skipped=len(specs) - len(todo))
        write_manifest(self.lake, self.manifest("running", progress))
        gate = asyncio.Semaphore(self.concurrency)

        async def bounded(spec: SampleSpec) -> None:
            async with gate:
                await self._one(spec, progress)
            await self._record(progress)

        async def ticker() -> None:
            while True:
                await asyncio.sleep(GRADE_EVERY_S)
                await self._record(progress, force=True)
                self.on_progress(progress)

        tick = asyncio.create_task(ticker())
        status = "finished"
        try:
            await asyncio.gather(*(bounded(s) for s in todo))
        except (asyncio.CancelledError, KeyboardInterrupt):
            status = "interrupted"
            raise
        finally:
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)
            await asyncio.shield(self._finish(progress, status))
        return progress

    async def _finish(self, progress: Progress, status: str) -> None:
        from troupe.evals.results import compact, write_manifest

        t0 = time.monotonic()
        await self._record(progress, force=True)
        t1 = time.monotonic()
        await self.troupe.backend.finish_run(self.run_id)
        await self.troupe.close_idle_mcp()  # no server process waits out idle_close_s after a sweep
        compact(self.lake, self.run_id)
        progress.finish_s = (t1 - t0, time.monotonic() - t1)
        write_manifest(self.lake, self.manifest(status, progress))
        self.on_progress(progress)

    def manifest(self, status: str, progress: Progress) -> Any:
        from troupe.evals.results import RunManifest, find_manifest

        previous = find_manifest(self.lake, self.run_id)
        m = RunManifest.for_suite(
            self.suite.suite, run_id=self.run_id, cases=self.suite.cases, suite_path=str(self.suite.path),
            grid=self.grid, models=[str(v) for v in self.grid.get("model", [self.model or "(team default)"])],
            samples=self.samples, concurrency=self.concurrency,
        )
        totals = {"planned": progress.total, "done": progress.done + progress.skipped, "passed": progress.passed,
                  "failed": progress.failed}
        update: dict[str, Any] = {"status": status, "totals": totals, "owner": self.owner}
        if previous is not None:
            update["created_at"] = previous.created_at
        return m.model_copy(update=update)


async def run_suite(suite_path: str | Path, *, troupe: Any, **options: Any) -> tuple[str, Progress]:
    """Load ``suite_path`` and run its sweep on ``troupe``; returns the run id and the counts."""
    sweep = Sweep(troupe, load_suite(suite_path), **options)
    progress = await sweep.run()
    return sweep.run_id, progress


__all__ = ["ORACLE", "Progress", "SampleSpec", "Sweep", "cell_key", "expand", "input_text", "oracle_profile",
           "run_suite", "sweep_run_id", "team_for_sample"]
