"""What running a session as a Ray job costs: ``ray job submit -- troupe run`` against the same session
run directly on the same cluster.

The cluster: a private ``ray start --head`` (its own ports and temp dir; benchmarks/support/ray_head.py),
2 CPUs, token auth off. The session: the 3-agent team of benchmarks/sweep.py (``lead`` hands a task
each to ``a`` and ``b``, they answer, the lead answers; a deterministic model that waits 50 ms per
call, 4 calls, 3 on the critical path), ``dedicated`` placement (the CLI's default), lake in a temp dir.

Three ways, each timed from the caller's side, from start to the command's exit:
  job      ``ray job submit --working-dir REPO -- troupe run TEAM go --json`` (upload, runtime env,
           the job's driver process joining the cluster, the session, the log tail ending);
  direct   ``troupe run TEAM go --address GCS --json`` in a subprocess (Python start, joining the
           cluster, the session);
  session  ``Troupe.run`` in this process, already connected (the session's own actors, messages and
           lake writes; ``dedicated`` starts one actor process per agent, ~1 s each here).
The first job also uploads the working directory (its package is cached by content hash after that);
it is reported apart (``--smoke`` skips it: its one timed job does the upload). Ratios: job / direct and
job / session, on the medians.

    python -m benchmarks.job [--reps 5] [--placement dedicated|packed] [--smoke]   (or python benchmarks/job.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import REPO, parse_args


def write_team(folder: Path) -> Path:
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": "bench", "entry": "lead", "default_model": "m",
        "models": {"m": {"provider": "function", "function": "benchmarks.sweep:reply"}},
        "agents": [{"id": "lead", "tools": ["assign_tasks"]}, {"id": "a"}, {"id": "b"}],
    }))
    return folder / "team.yaml"


def _outcome(stdout: str) -> dict[str, Any]:
    """The ``--json`` line of ``troupe run`` in a command's output."""
    line = next(x for x in stdout.splitlines() if x.startswith('{"session_id"'))
    out: dict[str, Any] = json.loads(line)
    if out["status"] != "completed":
        raise RuntimeError(f"the session did not complete: {out}")
    return out


def run_job(head: Any, team: Path, lake: Path, placement: str) -> dict[str, float]:
    from ray.job_submission import JobSubmissionClient

    job_id = f"bench-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", head.dashboard_url,
                           "--submission-id", job_id, "--working-dir", str(REPO), "--",
                           "troupe", "run", str(team), "go", "--lake", str(lake), "--placement", placement, "--json"],
                          cwd=REPO, env=head.env(), capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ray job submit failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    info = JobSubmissionClient(head.dashboard_url).get_job_info(job_id)
    return {"wall_s": wall, "job_s": (info.end_time - info.start_time) / 1e3,
            "session_s": _outcome(done.stdout)["duration_s"]}


def run_direct(head: Any, team: Path, lake: Path, placement: str) -> dict[str, float]:
    env = {**head.base_env, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "troupe.runtime.cli.main", "run", str(team), "go", "--address", head.gcs_address,
                           "--lake", str(lake), "--placement", placement, "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"troupe run failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, "session_s": _outcome(done.stdout)["duration_s"]}


async def run_in_process(head: Any, team: Path, lake: Path, placement: str, reps: int) -> list[dict[str, float]]:
    import ray

    from troupe.runtime.api import Troupe

    troupe = await Troupe.connect(address=head.gcs_address, lake=lake, placement=placement,
                                  logging_level=logging.WARNING)
    out = []
    try:
        await troupe.run(team, "go", timeout=60)  # warm: the first worker processes
        for _ in range(reps):
            t0 = time.monotonic()
            result = await troupe.run(team, "go", timeout=60)
            wall = time.monotonic() - t0
            if not result.ok:
                raise RuntimeError(f"the session did not complete: {result.status} {result.error}")
            out.append({"wall_s": wall, "session_s": result.duration_s})
    finally:
        await troupe.shutdown()
        ray.shutdown()
    return out


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs of each kind after the first job (default 5)")
    parser.add_argument("--first-job", action=argparse.BooleanOptionalAction, default=True,
                        help="time a first job (the upload) apart before the reps")
    parser.add_argument("--placement", choices=["dedicated", "packed"], default="dedicated",
                        help="dedicated (the CLI's default): the session starts an actor per agent")
    args = parse_args(parser, smoke={"reps": 1, "first_job": False})
    os.environ["RAY_AUTH_MODE"] = "disabled"  # before ray is imported; the private head has token auth off
    from benchmarks.support.ray_head import start_head

    with tempfile.TemporaryDirectory() as tmp:
        team, lake = write_team(Path(tmp)), Path(tmp) / "lake"
        t0 = time.monotonic()
        head = start_head()
        head_s = time.monotonic() - t0
        try:
            first = run_job(head, team, lake, args.placement) if args.first_job else None
            jobs: list[dict[str, float]] = []
            direct: list[dict[str, float]] = []
            for _ in range(args.reps):  # interleaved, so both see the same machine
                jobs.append(run_job(head, team, lake, args.placement))
                direct.append(run_direct(head, team, lake, args.placement))
            inproc = asyncio.run(run_in_process(head, team, lake, args.placement, args.reps))
        finally:
            head.stop()
    job_s, direct_s, session_s = _median(jobs, "wall_s"), _median(direct, "wall_s"), _median(inproc, "wall_s")
    figures: dict[str, Any] = {
        "reps": args.reps, "placement": args.placement, "head_start_s": round(head_s, 2),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "first_job_wall_s": round(first["wall_s"], 3) if first else None,
        "job_wall_s": job_s, "job_driver_s": _median(jobs, "job_s"), "job_session_s": _median(jobs, "session_s"),
        "direct_wall_s": direct_s, "direct_session_s": _median(direct, "session_s"),
        "in_process_wall_s": session_s, "in_process_session_s": _median(inproc, "session_s"),
        "job_overhead_s": round(job_s - direct_s, 3),
        "job_to_direct": round(job_s / direct_s, 2), "job_to_session": round(job_s / session_s, 2),
        "job_wall_s_all": [round(r["wall_s"], 2) for r in jobs],
        "direct_wall_s_all": [round(r["wall_s"], 2) for r in direct],
    }
    print(f"private head up in {head_s:.1f} s; {args.placement} placement; medians of {args.reps} runs each "
          f"(load average {figures['load_avg_1m']} on {os.cpu_count()} CPUs)")
    upload = f"first, with the upload: {first['wall_s']:.2f} s" if first else "no first job apart"
    print(f"ray job submit -- troupe run: {job_s:.2f} s wall ({upload}); "
          f"the job itself {figures['job_driver_s']:.2f} s; its session {figures['job_session_s']:.2f} s")
    print(f"troupe run --address (subprocess): {direct_s:.2f} s wall; its session {figures['direct_session_s']:.2f} s")
    print(f"Troupe.run in process, already connected: {session_s:.2f} s wall; its session "
          f"{figures['in_process_session_s']:.2f} s")
    print(f"a job costs {figures['job_overhead_s']:.2f} s more than the direct run = {figures['job_to_direct']}x; "
          f"{figures['job_to_session']}x the in-process run")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
