"""The embedded local model: time to first token, tokens per second, and what the runtime adds to
the demo (its wall time as a ratio to the sum of its LLM calls' times, from the lake).

    python benchmarks/local_model.py [--runs 3] [--placement packed] [--smoke]

Needs the 'local' extra. Ends with one JSON line of figures. ``--smoke`` streams 8 tokens once and
stops the demo after 2 model calls of at most 8 tokens each (its answer is then not expected to be correct).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from troupe.actors.backend import ensure_ray
from troupe.runtime.api import Troupe
from troupe.runtime.config import ModelProfile, TeamConfig
from troupe.runtime.demo import QUESTION, answer_is_correct, demo_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.registry import build_client
from troupe.runtime.llm.types import ChatMessage, LLMRequest

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args

PROMPT = "Write three short sentences about actors in distributed systems."


async def stream_once(max_tokens: int = 128) -> dict[str, float]:
    """One streamed completion through the same client path the agents use."""
    profiles = {"local": ModelProfile(provider="local", model="default", temperature=0, max_tokens=max_tokens)}
    client = build_client("local", profiles, agent="bench")
    first: list[float] = []
    started = time.perf_counter()
    response = await client.complete(
        LLMRequest(messages=[ChatMessage(role="user", content=PROMPT)]),
        on_token=lambda _t: first.append(time.perf_counter()) if not first else None,
    )
    ended = time.perf_counter()
    await client.aclose()
    decode_s = max(ended - first[0], 1e-6)
    return {"ttft_s": first[0] - started, "tokens_per_s": response.usage.tokens_out / decode_s,
            "tokens_out": response.usage.tokens_out}


def team(llm_calls: int | None, max_tokens: int | None) -> TeamConfig:
    """The demo team, its model calls capped at ``llm_calls`` and their answers at ``max_tokens`` if given."""
    cfg = demo_team()
    update: dict[str, Any] = {}
    if llm_calls is not None:
        update["budgets"] = cfg.budgets.model_copy(update={"max_llm_calls": llm_calls})
    if max_tokens is not None:
        profile = ModelProfile(provider="local", model="default", temperature=0, max_tokens=max_tokens)
        update["models"] = {**cfg.models, cfg.default_model: profile}
    return cfg.model_copy(update=update)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="demo runs")
    parser.add_argument("--placement", default="packed")
    parser.add_argument("--streams", type=int, default=3, help="timed streamed completions")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per streamed completion")
    parser.add_argument("--demo-llm-calls", type=int, default=None, help="cap the demo's model calls (default: its own budget)")
    parser.add_argument("--demo-max-tokens", type=int, default=None, help="cap each demo answer (default: no cap)")
    args = parse_args(parser, smoke={"runs": 1, "streams": 1, "max_tokens": 8, "demo_llm_calls": 2, "demo_max_tokens": 8})

    await stream_once(args.max_tokens)  # warm: assemble the model, start the server, load weights
    streams = [await stream_once(args.max_tokens) for _ in range(args.streams)]

    ensure_ray("local", num_cpus=2)
    lake = tempfile.mkdtemp(prefix="troupe-bench-")
    troupe = await Troupe.connect(lake=lake, placement=args.placement)
    demos = []
    for _ in range(args.runs):
        started = time.perf_counter()
        result = await troupe.run(team(args.demo_llm_calls, args.demo_max_tokens), QUESTION, timeout=600)
        wall = time.perf_counter() - started
        per_agent = {r["agent"]: r["s"] for r in query(
            lake, f"select agent, sum(duration_ms) / 1000 s from events where session_id = '{result.session_id}' "
                  f"and type = 'llm.response' group by agent").to_pylist()}
        row = {"s": sum(per_agent.values()), "n": None}
        # The workers run in parallel: the LLM time the session must wait for is the lead's plus the slower worker's.
        critical = per_agent.get("lead", 0.0) + max((v for k, v in per_agent.items() if k != "lead"), default=0.0)
        demos.append({"wall_s": wall, "llm_s": row["s"], "critical_llm_s": critical,
                      "correct": answer_is_correct(result.reply), "status": str(result.status)})
        print(f"demo: {result.status}, {wall:.1f} s, LLM calls summing {row['s']:.1f} s ({critical:.1f} s on the critical path), "
              f"correct={answer_is_correct(result.reply)}: {result.reply!r}")
    await troupe.shutdown()
    ray.shutdown()

    figures = {
        "ttft_s": round(statistics.median(s["ttft_s"] for s in streams), 3),
        "tokens_per_s": round(statistics.median(s["tokens_per_s"] for s in streams), 1),
        "demo_wall_s": round(statistics.median(d["wall_s"] for d in demos), 2),
        "demo_llm_s": round(statistics.median(d["llm_s"] for d in demos), 2),
        "demo_wall_vs_llm_sum": round(statistics.median(d["wall_s"] / max(d["llm_s"], 1e-6) for d in demos), 2),
        "demo_wall_vs_critical_llm": round(statistics.median(d["wall_s"] / max(d["critical_llm_s"], 1e-6) for d in demos), 2),
        "demo_correct": f"{sum(d['correct'] for d in demos)}/{len(demos)}",
        "placement": args.placement,
    }
    print(f"time to first token {figures['ttft_s']} s, {figures['tokens_per_s']} tokens/s; demo wall time "
          f"{figures['demo_wall_s']} s = {figures['demo_wall_vs_llm_sum']}x the sum of its LLM calls, "
          f"{figures['demo_wall_vs_critical_llm']}x the LLM time on its critical path")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
