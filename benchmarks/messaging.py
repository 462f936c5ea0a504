"""Agent->agent messages per second in `dedicated` and `packed` placement, against raw Ray.

Baseline (same run): one async Ray actor calling another's method with the same envelope, awaiting
each call, 100 in flight at a time. Troupe: the sender's host routes each message to the recipient's
mailbox (the recipient is paused, so no turns run), with the session checkpointed (the default for
dedicated sessions: a message is acknowledged once the recipient's checkpointed inbox holds it) and
without.
Ends with one JSON line of figures.

    python benchmarks/messaging.py [--messages 5000] [--repeats 3] [--smoke]
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
from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team
from troupe.runtime.messages import Envelope

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args

WINDOW = 100


@ray.remote(num_cpus=0)
class Sink:
    def __init__(self) -> None:
        self.got = 0

    async def recv(self, envelope: Envelope) -> bool:
        self.got += 1
        return True


@ray.remote(num_cpus=0)
class Source:
    async def blast(self, sink: ray.actor.ActorHandle, n: int) -> float:
        envs = [Envelope(session_id="s-bench", sender="a", recipient="b", content=f"probe {i}") for i in range(n)]
        started = time.perf_counter()
        for i in range(0, n, WINDOW):
            await asyncio.gather(*(sink.recv.remote(e) for e in envs[i:i + WINDOW]))
        return time.perf_counter() - started


TEAM = parse_team({
    "name": "bench", "entry": "a", "default_model": "m",
    "models": {"m": {"provider": "scripted", "scripts": {"*": []}}},
    "agents": [{"id": "a"}, {"id": "b"}],
})


async def troupe_rate(troupe: Troupe, placement: str, n: int) -> float:
    session = await troupe.open(TEAM, placement=placement)
    await session.pause("b")
    placed = troupe.backend._sessions[session.id]
    host = placed.handle_for("a")
    seconds = await host.probe_send.remote(session.id, "a", "b", n)
    depth = (await session.describe("b"))["mailbox"]
    assert depth == n, f"expected {n} messages in b's mailbox, found {depth}"
    await session.close()
    return n / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_args(parser, smoke={"messages": 200, "repeats": 1})
    ensure_ray("local", num_cpus=2)
    troupe = await Troupe.connect(lake=tempfile.mkdtemp(prefix="troupe-bench-"))
    plain = await Troupe.connect(lake=tempfile.mkdtemp(prefix="troupe-bench-"), checkpoints=False)
    source, sink = Source.remote(), Sink.remote()
    await sink.recv.remote(Envelope(session_id="s-bench", sender="a", recipient="b"))  # warm up
    raw, dedicated, unsaved, packed = [], [], [], []
    for _ in range(args.repeats):
        raw.append(args.messages / await source.blast.remote(sink, args.messages))
        dedicated.append(await troupe_rate(troupe, "dedicated", args.messages))
        unsaved.append(await troupe_rate(plain, "dedicated", args.messages))
        packed.append(await troupe_rate(troupe, "packed", args.messages))
    best = {"raw_ray_msgs_per_s": max(raw), "dedicated_msgs_per_s": max(dedicated),
            "dedicated_no_checkpoints_msgs_per_s": max(unsaved), "packed_msgs_per_s": max(packed)}
    figures = {
        **{k: round(v) for k, v in best.items()},
        "dedicated_vs_raw": round(best["dedicated_msgs_per_s"] / best["raw_ray_msgs_per_s"], 2),
        "dedicated_no_checkpoints_vs_raw": round(best["dedicated_no_checkpoints_msgs_per_s"] / best["raw_ray_msgs_per_s"], 2),
        "packed_vs_raw": round(best["packed_msgs_per_s"] / best["raw_ray_msgs_per_s"], 1),
        "messages": args.messages,
        "repeats": args.repeats,
    }
    print(f"raw Ray actor->actor: {figures['raw_ray_msgs_per_s']:,} msgs/s")
    print(f"dedicated agent->agent, checkpointed (each message in the recipient's inbox before it is "
          f"acknowledged): {figures['dedicated_msgs_per_s']:,} msgs/s ({figures['dedicated_vs_raw']}x raw; target >= 0.7x)")
    print(f"dedicated agent->agent, checkpoints off: {figures['dedicated_no_checkpoints_msgs_per_s']:,} msgs/s "
          f"({figures['dedicated_no_checkpoints_vs_raw']}x raw)")
    print(f"packed co-located agent->agent: {figures['packed_msgs_per_s']:,} msgs/s ({figures['packed_vs_raw']}x raw; target >= 20x)")
    await plain.shutdown()
    await troupe.shutdown()
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
