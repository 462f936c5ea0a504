"""How many idle agents fit: 10,000 packed agents on this machine, beside one dedicated actor.

Creates 1,000 sessions of a 10-agent team on one pool host (packed placement, ``open_many`` in
batches of 100, as a sweep does) and reports agents
created per second and resident memory per idle agent (the host's RSS growth / agents), beside the
start time and RSS of one dedicated host actor. Ends with one JSON line of figures.

    python benchmarks/density.py [--agents 10000] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import ray

from troupe.actors.backend import ensure_ray
from troupe.actors.host_actor import HostActor
from troupe.actors.options import host_options
from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args

TEAM_SIZE = 10
BATCH = 100


def team(size: int):
    return parse_team({
        "name": "density", "entry": "a0", "default_model": "m",
        "models": {"m": {"provider": "scripted", "scripts": {"*": []}}},
        "agents": [{"id": f"a{i}", "tools": ["calculator", "blackboard_put", "send_message"]} for i in range(size)],
    })


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    args = parse_args(parser, smoke={"agents": 200})
    ensure_ray("local", num_cpus=2)
    troupe = await Troupe.connect(lake=tempfile.mkdtemp(prefix="troupe-bench-"), pool_size=1)
    backend = troupe.backend
    cfg = team(TEAM_SIZE)

    # Warm the pool host (its process start is the dedicated cost measured below, not per agent).
    warm = await troupe.open(cfg, placement="packed")
    host = backend._sessions[warm.id].host
    await warm.close()
    rss_before = await host.rss_bytes.remote()

    sessions = args.agents // TEAM_SIZE
    started = time.perf_counter()
    opened = []
    for i in range(0, sessions, BATCH):
        opened += await troupe.open_many(cfg, min(BATCH, sessions - i), placement="packed")
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)
    rss_after = await host.rss_bytes.remote()
    described = await host.describe.remote()
    agents_alive = sum(len([g for g in guests if g.startswith("a")]) for guests in described["sessions"].values())
    assert agents_alive == sessions * TEAM_SIZE, f"expected {sessions * TEAM_SIZE} agents, found {agents_alive}"

    # One dedicated actor: process start to first answer, and its memory.
    t0 = time.perf_counter()
    single = ray.remote(HostActor).options(**host_options("density-probe")).remote(backend.log_name, backend.scheduler_name)
    await single.rss_bytes.remote()
    dedicated_start_s = time.perf_counter() - t0
    dedicated_rss = await single.rss_bytes.remote()
    ray.kill(single)

    figures = {
        "agents": agents_alive,
        "agents_per_s": round(agents_alive / elapsed),
        "bytes_per_idle_agent": round((rss_after - rss_before) / agents_alive),
        "host_rss_mb": round(rss_after / 2**20, 1),
        "dedicated_actor_start_s": round(dedicated_start_s, 2),
        "dedicated_actor_rss_mb": round(dedicated_rss / 2**20, 1),
        "packed_vs_dedicated_start": round(dedicated_start_s / (elapsed / agents_alive)),
    }
    print(f"{agents_alive:,} packed agents in {elapsed:.2f} s: {figures['agents_per_s']:,} agents/s (target >= 2,000)")
    print(f"memory per idle agent: {figures['bytes_per_idle_agent'] / 1024:.1f} KB (target <= 100 KB)")
    print(f"one dedicated actor: {dedicated_start_s:.2f} s to start, {figures['dedicated_actor_rss_mb']} MB resident")
    for s in opened:
        await s.close()
    await troupe.shutdown()
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
