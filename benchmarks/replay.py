"""Replaying a recorded eval sweep: N samples of benchmarks/sweep.py's 3-agent team (its model waits
50 ms per call, 4 calls per sample) are recorded by a sweep, then the whole run is replayed from the lake
(``ForkedSweep(replay=True)``, what ``troupe eval run --from-run RUN --replay`` runs): every model answer
and tool result from the record, no model call. Reports the replay's samples/s against the recording
sweep's in the same run (target: faster, the 50 ms waits gone), the fraction of samples that replayed
identically (target 100%), and, in one process (``local``), the model calls the replay made (target 0).

Placement: Ray with packed host actors, as benchmarks/sweep.py (``ray``), the runtime in this process
(``local``), or both in turn.

    python -m benchmarks.replay [--samples 1000] [--concurrency 200] [--placement ray|local|both] [--smoke]
                                (or python benchmarks/replay.py)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import sweep as bench_sweep
from benchmarks.support.cli import parse_args
from troupe.runtime.llm.types import LLMRequest, LLMResponse

CALLS = [0]
"""Model calls answered in this process (the ``local`` placement's), in the module the team names
(``benchmarks.replay``: run as a file or with ``-m``, this script is another module, ``__main__``)."""


async def reply(request: LLMRequest, agent: str) -> LLMResponse | str:
    """benchmarks/sweep.py's model (50 ms per call), counted."""
    CALLS[0] += 1
    return await bench_sweep.reply(request, agent)


def write_suite(folder: Path, n: int, name: str) -> Path:
    """benchmarks/sweep.py's suite of ``n`` cases on this module's counted model."""
    path = bench_sweep.write_suite(folder, n, name)
    team = folder / "team.yaml"
    team.write_text(team.read_text().replace("benchmarks.sweep:reply", "benchmarks.replay:reply"))
    return path


async def measure(placement: str, tmp: Path, samples: int, concurrency: int) -> dict[str, Any]:
    """Record a sweep of ``samples``, replay it; the figures of one placement."""
    from troupe.evals.suite import load_suite
    from troupe.evals.sweep import Sweep
    from troupe.evals.sweep_fork import ForkedSweep
    from troupe.runtime.api import Troupe

    root = tmp / placement
    root.mkdir()
    if placement == "ray":
        troupe = await Troupe.connect(lake=root / "lake", address="local", log_to_driver=False)
    else:
        troupe = Troupe.local(lake=root / "lake")
    try:
        (root / "warm").mkdir()
        await Sweep(troupe, load_suite(write_suite(root / "warm", 20, "warm")), concurrency=20).run()  # start the pool
        (root / "suite").mkdir()
        recording = Sweep(troupe, load_suite(write_suite(root / "suite", samples, "bench")), concurrency=concurrency)
        t0 = time.monotonic()
        recorded = await recording.run()
        record_s = time.monotonic() - t0
        counter = importlib.import_module("benchmarks.replay").CALLS
        calls0 = counter[0]
        replay = ForkedSweep(troupe, recording.run_id, replay=True, concurrency=concurrency)
        t0 = time.monotonic()
        replayed = await replay.run()
        replay_s = time.monotonic() - t0
        calls = counter[0] - calls0
        t0 = time.monotonic()
        check = await replay.check()
        check_s = time.monotonic() - t0
    finally:
        await troupe.shutdown()
        if placement == "ray":
            import ray

            if ray.is_initialized():
                ray.shutdown()
    for sample_id, why in list(check.diverged.items())[:3]:
        print(f"diverged ({placement}): {sample_id}: {why}")
    if recorded.done != samples or replayed.done != samples:
        raise RuntimeError(f"{samples} samples asked for: {recorded.done} recorded, {replayed.done} replayed")
    return {
        "record_s": round(record_s, 2), "record_samples_per_s": round(samples / record_s, 1),
        "replay_s": round(replay_s, 2), "replay_samples_per_s": round(samples / replay_s, 1),
        "replay_vs_record": round(record_s / replay_s, 2), "identical": check.identical,
        "identical_fraction": round(check.fraction, 4), "check_s": round(check_s, 2),
        "recorded_passed": recorded.passed, "replayed_passed": replayed.passed,
        **({"replay_model_calls": calls} if placement == "local" else {}),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--placement", choices=["ray", "local", "both"], default="ray")
    args = parse_args(parser, smoke={"samples": 6, "concurrency": 3, "placement": "local"})
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    figures: dict[str, Any] = {"samples": args.samples, "concurrency": args.concurrency,
                               "model_wait_s": bench_sweep.CALL_S}
    with tempfile.TemporaryDirectory() as tmp:
        for placement in ["ray", "local"] if args.placement == "both" else [args.placement]:
            got = await measure(placement, Path(tmp), args.samples, args.concurrency)
            figures[placement] = got
            print(f"{placement}: {args.samples} samples at concurrency {args.concurrency}: recorded at "
                  f"{got['record_samples_per_s']} samples/s ({got['record_s']} s), replayed at "
                  f"{got['replay_samples_per_s']} samples/s ({got['replay_s']} s) = {got['replay_vs_record']}x "
                  f"(target > 1); {got['identical']}/{args.samples} identical (target all; checked in "
                  f"{got['check_s']} s)" + (f"; {got['replay_model_calls']} model calls in the replay (target 0)"
                                            if "replay_model_calls" in got else ""))
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
