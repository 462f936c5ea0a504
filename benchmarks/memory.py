"""Memory benchmark: recall latency with 1M memory rows in one project, against a plain DuckDB query.

1. ``--rows`` entries (keys ``fact/<i>``, values of 8-14 words drawn Zipf-like from a 20,000-word vocabulary)
   are bulk-loaded as one project's base (entries + BM25 postings, built with DuckDB for this ASCII text;
   the same tokens :mod:`troupe.runtime.memory.text` makes), plus ``--log`` entries written one by one
   through :class:`~troupe.runtime.memory.service.MemoryService` (the log a live project has).
2. ``--queries`` recalls of 3 words taken from a random stored value: ``MemoryService.search`` (what the
   ``recall`` tool and the automatic recall run: it re-lists the namespace for other writers, scores the
   base's postings in DuckDB and the log in Python), k=8.
3. Baseline, same run, same Parquet: a plain DuckDB query over the entries, ranking rows by how many of
   the query's words their value contains (``ILIKE``), newest first, k=8.

Run: ``.venv/bin/python benchmarks/memory.py`` (a few minutes; ``--smoke``: seconds). The last line is JSON.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args
from troupe.runtime.memory.model import ARROW_SCHEMA
from troupe.runtime.memory.service import MemoryService
from troupe.runtime.memory.store import POSTINGS_SCHEMA
from troupe.runtime.memory.text import STOPWORDS
from troupe.runtime.storage.location import open_storage

PROJECT = "bench"
K = 8


def vocabulary(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(4, 9)))
        if w not in STOPWORDS:
            words.add(w)
    return sorted(words)


def entries_table(rows: int, vocab: list[str], seed: int) -> pa.Table:
    gen = np.random.default_rng(seed)
    ranks = np.arange(1, len(vocab) + 1)
    weights = 1.0 / ranks
    weights /= weights.sum()
    lengths = gen.integers(8, 15, size=rows)
    picks = gen.choice(len(vocab), size=int(lengths.sum()), p=weights)
    values, at = [], 0
    for n in lengths:
        values.append(" ".join(vocab[i] for i in picks[at:at + n]))
        at += n
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table({
        "id": [f"mem-{i:012x}" for i in range(rows)], "scope": ["project"] * rows, "namespace": [PROJECT] * rows,
        "key": [f"fact/{i}" for i in range(rows)], "value": values, "op": ["remember"] * rows,
        "version": [1] * rows, "supersedes": [None] * rows, "note": [None] * rows, "agent": ["bench"] * rows,
        "session_id": [f"s-{i % 1000}" for i in range(rows)], "turn": [1] * rows, "event_id": [None] * rows,
        "created_at": [start + timedelta(seconds=i) for i in range(rows)], "expires_at": [None] * rows,
        "taint": [[]] * rows, "vouched": [[]] * rows,
    }, schema=ARROW_SCHEMA)


def postings_of(con: duckdb.DuckDBPyConnection, entries: pa.Table) -> pa.Table:
    con.register("e", entries)
    sql = """
        WITH toks AS (SELECT id, key, created_at, expires_at,
                             unnest(string_split(replace(key, '/', ' ') || ' ' || value, ' ')) AS term FROM e),
             lens AS (SELECT id, count(*) AS dl FROM toks GROUP BY id)
        SELECT term, id, key, count(*)::INT AS tf, any_value(dl)::INT AS dl, any_value(created_at) AS created_at,
               any_value(expires_at) AS expires_at
        FROM toks JOIN lens USING (id) GROUP BY term, id, key ORDER BY term, id"""
    out = con.sql(sql).to_arrow_table().cast(POSTINGS_SCHEMA)
    con.unregister("e")
    return out


def pct(samples: list[float], q: float) -> float:
    return round(statistics.quantiles(samples, n=100)[int(q) - 1] * 1000, 2) if len(samples) > 1 else samples[0] * 1000


async def run(rows: int, log: int, queries: int, root: Path) -> dict[str, Any]:
    rng = random.Random(7)
    vocab = vocabulary(20_000, rng)
    t0 = time.perf_counter()
    entries = entries_table(rows, vocab, 7)
    con = duckdb.connect()
    postings = postings_of(con, entries)
    from troupe.runtime.memory.store import MemoryStore

    store = MemoryStore(open_storage(root), "project", PROJECT)
    store.write_base(entries, postings)
    load_s = time.perf_counter() - t0
    from troupe.runtime.config import parse_team

    team = parse_team({"name": "bench", "entry": "a", "default_model": "m", "project": PROJECT,
                       "models": {"m": {"provider": "scripted", "scripts": {}}}, "agents": [{"id": "a", "memory": "project"}]})
    svc = MemoryService(open_storage(root), session_id="s-bench", project=PROJECT, grants={"a": "project"},
                        settings=team.memory)
    t0 = time.perf_counter()
    for i in range(log):
        await svc.remember("a", f"live/{i}", " ".join(rng.choice(vocab) for _ in range(10)))
    remember_ms = (time.perf_counter() - t0) / max(log, 1) * 1000
    values = entries.column("value").to_pylist()
    asks = [" ".join(rng.sample(values[rng.randrange(rows)].split(), 3)) for _ in range(queries)]
    ours: list[float] = []
    found = 0
    for q in asks:
        t0 = time.perf_counter()
        hits = svc.search("a", q, K)
        ours.append(time.perf_counter() - t0)
        found += bool(hits) and all(w in hits[0].entry.value.split() for w in q.split())
    files = f"['{root}/project/{PROJECT}/log/*.parquet', '{root}/project/{PROJECT}/base/*/entries/*.parquet']"
    plain: list[float] = []
    for q in asks:
        words = q.split()
        score = " + ".join(f"(value ILIKE '%{w}%')::INT" for w in words)
        sql = (f"SELECT id, key, value, {score} AS s FROM read_parquet({files}, union_by_name=true) "
               f"WHERE s > 0 ORDER BY s DESC, created_at DESC LIMIT {K}")
        t0 = time.perf_counter()
        con.sql(sql).fetchall()
        plain.append(time.perf_counter() - t0)
    return {
        "rows": rows, "log_rows": log, "queries": queries, "load_s": round(load_s, 2),
        "remember_ms": round(remember_ms, 2),
        "recall_p50_ms": pct(ours, 50), "recall_p95_ms": pct(ours, 95),
        "duckdb_scan_p50_ms": pct(plain, 50), "duckdb_scan_p95_ms": pct(plain, 95),
        "speedup_p50": round(statistics.median(plain) / statistics.median(ours), 1),
        "top_hit_has_all_words": round(found / max(queries, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--log", type=int, default=200, help="entries written one by one after the bulk load")
    parser.add_argument("--queries", type=int, default=200)
    args = parse_args(parser, smoke={"rows": 20_000, "log": 20, "queries": 20})
    with tempfile.TemporaryDirectory(prefix="troupe-memory-bench-") as tmp:
        figures = asyncio.run(run(args.rows, args.log, args.queries, Path(tmp)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
