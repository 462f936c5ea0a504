"""Event-lake benchmark: ingest rate end to end, and DuckDB query times over 1M events.

1. Two producer actors each emit N pre-built events through an ``EventBuffer`` shipping to the
   event-log actor, until all are in Parquet (``flush``). Baseline measured in the same run: one
   actor call per event (what a producer without batching would get). Target >= 100,000 events/s.
2. 1,000,000 synthetic events are written as 1,000 small session files, then compacted per run;
   count / group-by type / p50-p95 duration by type / tool.call<->tool.result self-join are timed
   on both layouts (the small-file layout is the baseline). Target group-by < 0.5 s.

Run: ``.venv/bin/python benchmarks/lake.py`` (about a minute; ``--smoke``: seconds). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from troupe.actors.eventlog_actor import RayShip, close_event_log, get_or_create_event_log
from troupe.runtime.eventlog.buffer import EventBuffer
from troupe.runtime.eventlog.lake import LakeWriter, compact_run, connect
from troupe.runtime.events import ARROW_SCHEMA, Event, events_to_columns

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args

TYPES = ["llm.request", "llm.response", "tool.call", "tool.result", "message.sent", "message.delivered", "agent.state"]


@ray.remote(num_cpus=0)
class Producer:
    """A host process: builds its events first (not timed), then emits them through an EventBuffer."""

    def __init__(self, log_name: str, run_id: str, n: int) -> None:
        self.log_name = log_name
        self.events: list[Event] = [
            Event(type="tool.call", run_id=run_id, session_id=f"{run_id}-s{i % 10}", seq=i, tool="search")
            for i in range(n)
        ]

    async def produce(self) -> float:
        buf = EventBuffer(RayShip(ray.get_actor(self.log_name, namespace="troupe")))
        buf.start()
        t0 = time.perf_counter()
        for i, ev in enumerate(self.events):
            buf.emit(ev)
            if i % 2000 == 1999:
                await asyncio.sleep(0)  # let the shipper run, as a real host's awaits would
        await buf.close()
        return time.perf_counter() - t0

    async def unbatched(self, n: int) -> float:
        """Baseline: one awaited actor call per event."""
        handle = ray.get_actor(self.log_name, namespace="troupe")
        t0 = time.perf_counter()
        for ev in self.events[:n]:
            await handle.append.remote(events_to_columns([ev]))
        return time.perf_counter() - t0


async def ingest(n_per_producer: int, lake: Path) -> dict[str, float]:
    name = f"eventlog-bench-{uuid.uuid4().hex[:6]}"
    log = get_or_create_event_log(lake, name=name)
    await log.stats.remote()
    producers = [Producer.remote(name, f"bench{k}", n_per_producer) for k in range(2)]
    t_build = time.perf_counter()
    await asyncio.gather(*(p.__ray_ready__.remote() for p in producers))
    build_s = time.perf_counter() - t_build

    base_n = min(2000, n_per_producer)
    base_s = await producers[0].unbatched.remote(base_n)
    await log.flush.remote()
    base_rate = base_n / base_s

    before = (await log.stats.remote())["rows_written"]
    t0 = time.perf_counter()
    await asyncio.gather(*(p.produce.remote() for p in producers))
    await log.flush.remote()
    elapsed = time.perf_counter() - t0
    stats = await log.stats.remote()
    total = 2 * n_per_producer
    assert stats["rows_written"] - before == total, stats
    await close_event_log(log)
    for p in producers:
        ray.kill(p)
    rate = total / elapsed
    print(f"ingest: {total:,} events from 2 producer actors to Parquet in {elapsed:.2f} s = {rate:,.0f} events/s")
    print(f"  baseline, one actor call per event: {base_rate:,.0f} events/s -> batching is {rate / base_rate:.0f}x")
    print(f"  (building {total:,} Event objects in the producers took {build_s:.2f} s, not timed)")
    print(f"  files written: {stats['files_written']}, flushes: {stats['flushes']}")
    return {
        "ingest_events": total,
        "ingest_s": round(elapsed, 3),
        "ingest_events_per_s": round(rate),
        "unbatched_events_per_s": round(base_rate),
        "ingest_vs_unbatched": round(rate / base_rate, 1),
    }


def synthetic(n: int, runs: int, sessions_per_run: int) -> list[pa.Table]:
    """``n`` events as one table per session: LLM turns, tool calls with results, messages."""
    rnd = random.Random(7)
    per = n // (runs * sessions_per_run)
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    tables = []
    for r in range(runs):
        for s in range(sessions_per_run):
            cols: dict[str, list[Any]] = {name: [] for name in ARROW_SCHEMA.names}
            last_call = None
            for i in range(per):
                kind = TYPES[i % len(TYPES)]
                eid = uuid.UUID(int=rnd.getrandbits(128)).hex
                parent = last_call if kind == "tool.result" else None
                if kind == "tool.call":
                    last_call = eid
                row = {
                    "schema_version": 1,
                    "event_id": eid,
                    "ts": t0 + timedelta(seconds=r * 3600 + s * 10 + i * 0.01),
                    "run_id": f"run{r}",
                    "session_id": f"run{r}-s{s}",
                    "task_id": None,
                    "turn": 1,
                    "agent": f"agent{i % 4}",
                    "type": kind,
                    "seq": i,
                    "position": i + 1,
                    "parent_event_id": parent,
                    "duration_ms": rnd.expovariate(1 / 120) if kind in ("llm.response", "tool.result") else None,
                    "model": "m" if kind.startswith("llm") else None,
                    "tool": f"tool{i % 5}" if kind.startswith("tool") else None,
                    "tokens_in": 100 if kind == "llm.response" else None,
                    "tokens_out": 20 if kind == "llm.response" else None,
                    "status": "ok",
                    "payload": '{"k": 1}',
                }
                for k, v in row.items():
                    cols[k].append(v)
            tables.append(pa.Table.from_pydict(cols, schema=ARROW_SCHEMA))
    return tables


QUERIES = {
    "count": "SELECT count(*) FROM events",
    "group_by_type": "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC",
    "p50_p95_by_type": (
        "SELECT type, quantile_cont(duration_ms, 0.5) AS p50, quantile_cont(duration_ms, 0.95) AS p95 "
        "FROM events WHERE duration_ms IS NOT NULL GROUP BY type"
    ),
    "tool_call_result_join": (
        "SELECT c.tool, count(*) AS n, avg(r.duration_ms) AS avg_ms FROM events c "
        "JOIN events r ON r.parent_event_id = c.event_id "
        "WHERE c.type = 'tool.call' AND r.type = 'tool.result' GROUP BY c.tool"
    ),
}


def time_queries(lake: Path, repeats: int = 3) -> dict[str, float]:
    con = connect(lake)
    out = {}
    for key, sql in QUERIES.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            con.sql(sql).to_arrow_table()
            times.append(time.perf_counter() - t0)
        out[key] = statistics.median(times)
    con.close()
    return out


def queries(n: int, lake: Path, sessions: int = 100) -> dict[str, Any]:
    runs = 10
    t0 = time.perf_counter()
    tables = synthetic(n, runs, sessions)
    gen_s = time.perf_counter() - t0
    writer = LakeWriter(lake)
    t0 = time.perf_counter()
    for t in tables:
        writer.write(t)
    write_s = time.perf_counter() - t0
    rows = sum(t.num_rows for t in tables)
    small_files = len(list((lake / "events").rglob("*.parquet")))
    print(f"lake: {rows:,} events generated in {gen_s:.1f} s, written as {small_files} session files in {write_s:.2f} s")
    small = time_queries(lake)

    t0 = time.perf_counter()
    for r in range(runs):
        compact_run(lake, f"run{r}")
    compact_s = time.perf_counter() - t0
    files = list((lake / "events").rglob("*.parquet"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"  compacted to {len(files)} files ({size_mb:.1f} MB) in {compact_s:.2f} s")
    big = time_queries(lake)
    con = connect(lake)
    assert con.sql("SELECT count(*) FROM events").fetchall()[0][0] == rows
    con.close()
    for key in QUERIES:
        print(f"  {key:24s} compacted {big[key] * 1000:7.1f} ms   {small_files} small files {small[key] * 1000:7.1f} ms"
              f"   ({small[key] / big[key]:.1f}x)")
    figures: dict[str, Any] = {
        "lake_events": rows,
        "small_files": small_files,
        "compacted_files": len(files),
        "lake_mb": round(size_mb, 1),
        "write_s": round(write_s, 2),
        "compact_s": round(compact_s, 2),
    }
    for key in QUERIES:
        figures[f"{key}_ms"] = round(big[key] * 1000, 1)
        figures[f"{key}_small_files_ms"] = round(small[key] * 1000, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-producer", type=int, default=200_000)
    parser.add_argument("--lake-events", type=int, default=1_000_000)
    parser.add_argument("--sessions-per-run", type=int, default=100, help="small files per run (10 runs)")
    args = parse_args(parser, smoke={"per_producer": 2000, "lake_events": 10_000, "sessions_per_run": 10})
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="troupe-lake-bench-") as tmp:
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="troupe", log_to_driver=False)
        try:
            figures.update(asyncio.run(ingest(args.per_producer, Path(tmp) / "ingest")))
        finally:
            ray.shutdown()
        figures.update(queries(args.lake_events, Path(tmp) / "query", args.sessions_per_run))
    figures["ingest_target_met"] = figures["ingest_events_per_s"] >= 100_000
    figures["group_by_target_met"] = figures["group_by_type_ms"] < 500
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
