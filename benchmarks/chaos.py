"""Chaos: N checkpointed sessions, each with one actor killed at a random point; what survives.

The session: the three-agent team of benchmarks/support/recovery_team.py (the lead hands a task each to
two workers; each applies a side effect on the node's tool worker, writes the blackboard and
replies; the lead reads the blackboard and answers), ``dedicated`` placement (each logical actor
its own Ray actor, checkpointed), a deterministic model that waits ``--step-s`` per call.

First ``--baseline`` undisturbed sessions give the expected answer, the events each agent emits and
the undisturbed time. Then each of ``--sessions`` sessions runs with one kill: a victim drawn from
the session's six logical actors and the runtime's event log and scheduler, killed with
``ray.kill`` or SIGKILL of its worker process, after a random number of the session's events.
Reported:

  completed        sessions that ended ``completed`` with the undisturbed answer, of N;
  lost events      gaps in a killed session's log (benchmarks/support/recovery_team.py ``gaps``): a message
                   sent to an agent that no mailbox took, a tool call without a result, a task that
                   never ended, no ``session.finished`` (replays add events; none may be missing);
  duplicated side effects   effects applied twice (a ledger line seen twice);
  recovery time    a killed session's time over that of an undisturbed session run right after it
                   (its own baseline, as the machine's load drifts), and the extra seconds.

    python -m benchmarks.chaos [--sessions 30] [--step-s 0.1] [--seed 1] [--smoke]   (or python benchmarks/chaos.py)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args
from benchmarks.support.recovery_team import expected_reply, gaps, ledger_items, recovery_team, request_text

VICTIMS = ("lead", "worker_a", "worker_b", "blackboard", "tasks", "session", "eventlog", "scheduler")


async def _one(troupe: Any, folder: Path, tag: str, kill: tuple[str, str, int] | None) -> dict[str, Any]:
    import ray

    from troupe.actors.naming import NAMESPACE, dedicated_name

    ledger = folder / f"ledger-{tag}"
    started = time.perf_counter()
    session = await troupe.open(recovery_team())
    await session.send(request_text(ledger, tag))
    killed_at = None
    if kill is not None:
        victim, how, after = kill
        seen = 0
        async for event in session.events():
            seen += 1
            if seen >= after and event.type != "session.finished":
                handle = {"eventlog": troupe.backend.log, "scheduler": troupe.backend.scheduler}.get(victim) \
                    or ray.get_actor(dedicated_name(session.id, victim), namespace=NAMESPACE)
                if how == "ray.kill":
                    ray.kill(handle, no_restart=False)
                else:
                    os.kill(await handle.__ray_call__.remote(lambda self: os.getpid()), signal.SIGKILL)
                killed_at = time.perf_counter() - started
                break
    result = await session.result(timeout=120)
    elapsed = time.perf_counter() - started
    await session.close()
    items = ledger_items(ledger)
    return {"session_id": str(session.id), "ok": result.ok and result.reply == expected_reply(tag),
            "status": str(result.status), "seconds": elapsed, "killed_at": killed_at,
            "duplicated": len(items) - len(set(items)), "victim": kill[0] if kill else None,
            "how": kill[1] if kill else None}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["TROUPE_CHAOS_STEP_S"] = str(args.step_s)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from troupe.runtime.api import Troupe
    from troupe.runtime.eventlog.lake import query

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="troupe-chaos-"))
    lake = str(folder / "lake")
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="troupe", log_to_driver=False,
             logging_level=logging.WARNING)
    troupe = await Troupe.connect(lake=lake)
    try:
        await _one(troupe, folder, "warm", None)  # worker processes, imports: not part of any figure
        base = [await _one(troupe, folder, f"u{i}", None) for i in range(args.baseline)]
        assert all(b["ok"] for b in base), f"an undisturbed session failed: {base}"
        await troupe.backend.flush()
        n_events = query(lake, f"select count(*) as n from events where session_id = '{base[-1]['session_id']}'"
                         ).column("n")[0].as_py()
        runs = []
        for i in range(args.sessions):
            kill = (rng.choice(VICTIMS), rng.choice(("ray.kill", "SIGKILL")), rng.randint(2, int(n_events * 0.8)))
            run = await _one(troupe, folder, f"k{i}", kill)
            # An undisturbed session right after, as this kill's own baseline (the machine's load drifts).
            run["baseline_s"] = (await _one(troupe, folder, f"b{i}", None))["seconds"]
            runs.append(run)
            print(f"  {i + 1:3d}/{args.sessions}  {kill[0]:<10} {kill[1]:<8} after {kill[2]:3d} events: "
                  f"{run['status']:<9} {run['seconds']:.2f} s (undisturbed {run['baseline_s']:.2f} s)", file=sys.stderr)
        await troupe.backend.flush()
        for run in runs:
            run["gaps"] = gaps(lake, run["session_id"])
            if any(run["gaps"].values()):
                print(f"  gaps in {run['session_id']} ({run['victim']}, {run['how']}): {run['gaps']}", file=sys.stderr)
    finally:
        await troupe.shutdown()
        ray.shutdown()
    killed = [r for r in runs if r["killed_at"] is not None]
    report = {
        "sessions": len(runs), "killed": len(killed),
        "completed": sum(r["ok"] for r in runs),
        "lost_events": sum(sum(r["gaps"].values()) for r in runs),
        "lost": dict(sum((collections.Counter(r["gaps"]) for r in runs), collections.Counter())),
        "duplicated_side_effects": sum(r["duplicated"] for r in runs),
        "undisturbed_s": round(statistics.median(r["baseline_s"] for r in runs), 3),
        "recovery_ratio_median": round(statistics.median(_ratio(r) for r in killed), 2) if killed else None,
        "recovery_ratio_max": round(max(_ratio(r) for r in killed), 2) if killed else None,
        "extra_s_median": round(statistics.median(r["seconds"] - r["baseline_s"] for r in killed), 2) if killed else None,
        "by_victim": {v: round(statistics.median(_ratio(r) for r in killed if r["victim"] == v), 2)
                      for v in VICTIMS if any(r["victim"] == v for r in killed)},
        "step_s": args.step_s, "seed": args.seed,
    }
    return report


def _ratio(run: dict[str, Any]) -> float:
    """A killed session's time over the undisturbed session run right after it."""
    return float(run["seconds"] / run["baseline_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions with a kill each")
    parser.add_argument("--baseline", type=int, default=2, help="undisturbed sessions first (the events counted)")
    parser.add_argument("--step-s", type=float, default=0.1, help="the model's wait per call")
    parser.add_argument("--seed", type=int, default=1)
    args = parse_args(parser, smoke={"sessions": 1, "baseline": 1, "step_s": 0.02})
    report = asyncio.run(main_async(args))
    print(f"completed {report['completed']}/{report['sessions']} ({report['killed']} with a kill before the end); "
          f"lost events {report['lost_events']} {report['lost']}; "
          f"duplicated side effects {report['duplicated_side_effects']}")
    print(f"recovery: median {report['recovery_ratio_median']}x, max {report['recovery_ratio_max']}x the undisturbed "
          f"{report['undisturbed_s']} s (median +{report['extra_s_median']} s); by victim {report['by_victim']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
