"""``troupe eval run | report | compare | list | baseline``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from troupe.runtime.approval_policy import ApprovalPolicy, load_approval_policy
from troupe.runtime.errors import ConfigError

if TYPE_CHECKING:
    from troupe.evals.sweep import Progress

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE = 0, 1, 2
PROGRESS_EVERY_S = 5.0
"""Without a terminal (a log, ``ray job logs``) the sweep's progress is one line this often."""


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["model=a,b", "budgets.max_tokens=500,1000"]`` -> ``{"model": ["a", "b"], ...}`` (numbers,
    booleans and JSON values are parsed; anything else stays a string)."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--grid {item!r}: write key=value1,value2 (e.g. --grid model=local,scripted)")
        grid[key.strip()] = [_value(v.strip()) for v in values.split(",")]
    return grid


def parse_sets(items: list[str] | None) -> dict[str, list[Any]]:
    """``--set KEY=VALUE`` (repeatable): a grid axis with one value, not split at commas
    (``--set prompt="Be brief, then stop."``)."""
    out: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write key=value (e.g. --set agents.0.instructions='Be brief.')")
        out[key.strip()] = [_value(value)]
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def progress_printer(out: TextIO | None = None, *, every_s: float = PROGRESS_EVERY_S) -> Callable[[Progress], None]:
    """A sweep's progress: redrawn in place on a terminal; else (a log, ``ray job logs``) one line
    at most every ``every_s`` seconds while the counts move, and always the last one."""
    stream = out or sys.stderr
    if stream.isatty():
        def redraw(p: Progress) -> None:
            stream.write("\r" + p.line().ljust(100))
            stream.flush()
        return redraw
    last: dict[str, Any] = {"counts": None, "at": 0.0}

    def log_line(p: Progress) -> None:
        counts, now = (p.done, p.failed, p.passed, p.running), time.monotonic()
        finished = p.done + p.skipped >= p.total
        if counts == last["counts"] or (not finished and now - last["at"] < every_s):
            return
        last.update(counts=counts, at=now)
        stream.write(p.line() + "\n")
        stream.flush()
    return log_line


def fan_out(*callbacks: Callable[[Progress], None] | None) -> Callable[[Progress], None] | None:
    """One progress callback calling each of ``callbacks`` given (``None`` when none is)."""
    chosen = [c for c in callbacks if c is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def each(p: Progress) -> None:
        for callback in chosen:
            callback(p)
    return each


def approval_policy(flag: str | None) -> ApprovalPolicy | None:
    """``--approve``: ``yes`` or ``no`` for every gated call, else a policy YAML file (see
    :mod:`troupe.runtime.approval_policy`); None when not given (gated calls wait, then are denied)."""
    if flag is None:
        return None
    if flag in ("yes", "no"):
        return ApprovalPolicy(default=flag)
    return load_approval_policy(flag)


def _lake(value: str | None) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


async def _run(args: argparse.Namespace) -> int:
    from troupe.actors.ray_metrics import sweep_progress_reporter  # the dashboard's troupe_sweep_samples gauges
    from troupe.evals.report_text import terminal_summary
    from troupe.evals.suite import LoadedSuite, load_suite
    from troupe.evals.sweep import Sweep
    from troupe.evals.sweep_fork import ForkedSweep
    from troupe.runtime.api import Troupe

    policy = approval_policy(args.approve)
    suite: LoadedSuite | None
    sweep: Sweep
    grid = {**parse_grid(args.grid), **parse_sets(args.set)}
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if args.from_run is None:
        if args.fork_at is not None or args.replay:
            raise ConfigError("--fork-at and --replay work on a recorded sweep: add --from-run RUN_ID")
        if args.suite is None:
            raise ConfigError("troupe eval run needs a suite file (or --from-run RUN_ID)")
        suite = load_suite(args.suite)
        suite.cases = suite.cases[:args.limit] if args.limit is not None else suite.cases
    else:
        from troupe.runtime.replay.steps import parse_step

        if args.fork_at is not None:
            parse_step(args.fork_at)  # a mistyped step fails before Ray starts
        if args.samples is not None:
            raise ConfigError("--samples does not apply with --from-run: the recorded sweep's samples are forked")
        suite = load_suite(args.suite) if args.suite else None
    quiet = args.json
    troupe = await Troupe.connect(address=args.address, lake=_lake(args.lake), placement="packed",
                                  logging_level=logging.WARNING)
    try:
        show = fan_out(None if quiet else progress_printer(), sweep_progress_reporter())
        if args.from_run is not None:
            sweep = ForkedSweep(troupe, args.from_run, fork_at=args.fork_at, replay=args.replay, suite=suite, grid=grid,
                                model=args.model, concurrency=args.concurrency, run_id=args.run_id, limit=args.limit,
                                on_progress=show, approval_policy=policy)
        else:
            assert suite is not None
            sweep = Sweep(troupe, suite, grid=grid, model=args.model, samples=args.samples,
                          concurrency=args.concurrency, run_id=args.run_id, on_progress=show, approval_policy=policy)
        if not quiet:
            print(f"[eval] suite {sweep.suite.suite.name}: run {sweep.run_id}, lake {troupe.lake}, "
                  f"concurrency {args.concurrency}", file=sys.stderr, flush=True)
        progress = await sweep.run()
        check = await sweep.check() if isinstance(sweep, ForkedSweep) and args.replay else None
    finally:
        await troupe.shutdown()
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    ok, failures = _gates(troupe.lake, sweep.run_id)
    lineage = _lineage(sweep)
    if check is not None:
        lineage.update(identical=check.identical, diverged=check.diverged)
        if not quiet:
            print(f"[eval] replay: {check.identical}/{check.samples} samples took their recorded path", file=sys.stderr)
    if args.json:
        print(json.dumps({"run_id": sweep.run_id, "lake": troupe.lake, "total": progress.total,
                          "recorded_before": progress.skipped, "ran": progress.done, "failed": progress.failed,
                          "passed": progress.passed, "gates_ok": ok, "gate_failures": failures, **lineage}))
    else:
        print(terminal_summary(troupe.lake, sweep.run_id))  # ends with the gates' verdict
        if lineage:
            print(f"[eval] from run {lineage['from_run']} at {lineage['fork_at']}; "
                  f"{len(lineage['not_forkable'])} sample(s) never reached it and ran from the start", file=sys.stderr)
        print(f"\nrun {sweep.run_id}  lake {troupe.lake}  report: troupe eval report {sweep.run_id}", file=sys.stderr)
    return EXIT_OK if ok and (check is None or not check.diverged) else EXIT_GATE_FAILED


def _lineage(sweep: Any) -> dict[str, Any]:
    """A forked or replayed sweep's ``from_run``, ``fork_at`` and ``not_forkable`` (else nothing)."""
    from_run = getattr(sweep, "from_run", None)
    if from_run is None:
        return {}
    return {"from_run": from_run, "fork_at": sweep.fork_at, "not_forkable": list(sweep.not_forkable)}


def _gates(lake: str, run_id: str) -> tuple[bool, list[str]]:
    """The suite's own gates on one run: minimum pass rate per cell, required cases."""
    from troupe.evals.analysis import check_gates
    from troupe.evals.results import read_manifest

    manifest = read_manifest(lake, run_id)
    result = check_gates(lake, run_id, manifest.gates)
    return result.ok, result.failures


def _report(args: argparse.Namespace) -> int:
    from troupe.evals.report import write_html
    from troupe.evals.report_text import terminal_summary

    lake = _lake(args.lake)
    out = write_html(lake, args.run_id, Path(args.out or f"report-{args.run_id}.html"))
    print(terminal_summary(lake, args.run_id))
    print(f"\nreport: {out}", file=sys.stderr)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from troupe.evals.analysis import compare
    from troupe.evals.models import Gates
    from troupe.evals.report_text import compare_text
    from troupe.evals.results import get_baseline, read_manifest

    lake = _lake(args.lake)
    runs = list(args.runs)
    if args.baseline:
        runs.insert(0, get_baseline(lake, args.baseline))
    if len(runs) != 2:
        raise ConfigError("compare needs two runs: RUN_A RUN_B, or --baseline NAME RUN_B")
    run_a, run_b = runs
    gates = read_manifest(lake, run_b).gates.model_copy()
    if args.min_pass_rate is not None or args.max_drop is not None:
        gates = Gates(min_pass_rate=args.min_pass_rate if args.min_pass_rate is not None else gates.min_pass_rate,
                      max_drop=args.max_drop if args.max_drop is not None else gates.max_drop,
                      required_cases=gates.required_cases)
    result = compare(lake, run_a, run_b, gates)
    if args.json:
        print(result.model_dump_json())
    else:
        print(compare_text(result))
    return EXIT_OK if result.ok else EXIT_GATE_FAILED


def _list(args: argparse.Namespace) -> int:
    from troupe.evals.results import list_runs

    runs = list_runs(_lake(args.lake))
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in runs]))
        return EXIT_OK
    if not runs:
        print("no eval runs in this lake yet: troupe eval run SUITE")
        return EXIT_OK
    for r in runs:
        totals = " ".join(f"{k}={v}" for k, v in (r.totals or {}).items())
        print(f"{r.run_id}  {r.suite:24}  {r.status:11}  {r.updated_at:%Y-%m-%d %H:%M}  {totals}")
    return EXIT_OK


def _baseline(args: argparse.Namespace) -> int:
    from troupe.evals.results import set_baseline

    set_baseline(_lake(args.lake), args.name, args.run_id)
    print(f"baseline {args.name!r} -> {args.run_id}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    ev = sub.add_parser("eval", help="run eval suites as sweeps and analyse them")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)

    def lake_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")

    run = ev_sub.add_parser("run", help="run a suite: grid x cases x samples, as sessions across the cluster")
    run.add_argument("suite", nargs="?", help="suite YAML file (with --from-run: default, the run's own)")
    run.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                     help="a grid axis: model, prompt, seed, or any team field path (repeatable)")
    run.add_argument("--model", help="model profile for every cell without a model axis ('oracle' answers from "
                                     "each case's expectation; 'local' is the embedded model)")
    run.add_argument("--concurrency", type=int, default=32, help="sessions at once (default 32)")
    run.add_argument("--samples", type=int, default=None, help="samples per case and cell (default: the suite's)")
    run.add_argument("--limit", type=int, default=None, help="only the suite's first N cases (a quick slice)")
    run.add_argument("--address", help="Ray address (default: a running cluster, else a new local one)")
    run.add_argument("--run-id", help="record under this run id (default: derived from suite, grid and samples, "
                                      "so re-running the same sweep resumes it)")
    run.add_argument("--approve", metavar="yes|no|POLICY.yaml",
                     help="decide tool calls that need approval: yes, no, or a policy file (rules per tool); "
                          "recorded as approval.decided by: policy. Without it they wait approval_timeout_s, "
                          "then are denied")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="one value for a cell key (a grid axis of one value, not split at commas); repeatable")
    run.add_argument("--from-run", metavar="RUN_ID",
                     help="fork (--fork-at) or replay (--replay) every sample of this recorded sweep; the new cell "
                          "is its cell with --grid/--set/--model applied (docs/replay.md)")
    run.add_argument("--fork-at", metavar="STEP",
                     help="where each sample leaves its record: after-first-tool-result, after-tool-result:N, "
                          "before-llm:N, turn:N, or an event id (that sample alone); a sample that never got "
                          "there runs from the start")
    run.add_argument("--replay", action="store_true",
                     help="with --from-run: replay every sample with zero model calls and count the identical ones")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of progress and a table")
    lake_option(run)
    run.set_defaults(func=lambda a: asyncio.run(_run(a)))

    report = ev_sub.add_parser("report", help="write an HTML report of a run and print its summary")
    report.add_argument("run_id")
    report.add_argument("--out", help="HTML file (default report-RUN_ID.html)")
    lake_option(report)
    report.set_defaults(func=_report)

    cmp = ev_sub.add_parser("compare", help="score deltas between two runs; exits 1 when a gate fails")
    cmp.add_argument("runs", nargs="*", metavar="RUN", help="RUN_A RUN_B (or just RUN_B with --baseline)")
    cmp.add_argument("--baseline", help="a named baseline as RUN_A")
    cmp.add_argument("--min-pass-rate", type=float, help="every cell of RUN_B must pass at least this often")
    cmp.add_argument("--max-drop", type=float, help="no cell's pass rate may drop more than this")
    cmp.add_argument("--json", action="store_true")
    lake_option(cmp)
    cmp.set_defaults(func=_compare)

    ls = ev_sub.add_parser("list", help="past eval runs, newest first")
    ls.add_argument("--json", action="store_true")
    lake_option(ls)
    ls.set_defaults(func=_list)

    base = ev_sub.add_parser("baseline", help="name a run as a baseline (for compare --baseline)")
    base.add_argument("name")
    base.add_argument("run_id")
    lake_option(base)
    base.set_defaults(func=_baseline)


__all__ = ["add_parser", "approval_policy", "fan_out", "parse_grid", "parse_sets", "progress_printer"]
