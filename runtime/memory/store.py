"""One memory namespace on storage: Parquet under ``<memory>/<scope>/<namespace>/``, read with DuckDB.

Layout (any :class:`~troupe.runtime.storage.location.Storage`: a folder, ``s3://...``)::

    log/part-*.parquet             entries written since the last compaction (one small file per write;
                                   merged into one file when there are many)
    base/<gen>/entries/*.parquet   every entry up to a compaction, history included
    base/<gen>/postings/*.parquet  (term, id, key, tf, dl, created_at, expires_at) of the entries current
                                   and not forgotten then, sorted by term: what a recall reads
    base/<gen>/manifest.json       written last: the documents' count and mean length, the log files covered

A write is on storage before :meth:`MemoryStore.append` returns. :meth:`MemoryStore.refresh` picks up what
other writers (another session, another cluster) added. A recall scores the base in DuckDB (only the
postings of the query's terms are read) and the log in Python, with the same BM25.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import pyarrow as pa

from troupe.runtime.memory.model import ARROW_SCHEMA, TS, MemoryEntry, RecalledEntry, from_rows, to_table
from troupe.runtime.memory.text import bm25, bm25_sql, doc_tokens, tokens
from troupe.runtime.storage.location import Storage

LOG_FILES_MERGE: Final = 32
"""Merge the log into one file once it has this many."""
LOG_ROWS_COMPACT: Final = 2_000
"""Fold the log into a new base once it holds this many entries."""
POSTINGS_SCHEMA: Final = pa.schema([("term", pa.string()), ("id", pa.string()), ("key", pa.string()),
                                    ("tf", pa.int32()), ("dl", pa.int32()), ("created_at", TS), ("expires_at", TS)])
_ROW_GROUP: Final = 65_536


def _key(e: MemoryEntry) -> tuple[int, datetime, str]:
    return e.version, e.created_at, e.id


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


class MemoryStore:
    """The entries of one ``scope``/``namespace``. Thread-safe (one lock); not async: callers use threads."""

    def __init__(self, storage: Storage, scope: str, namespace: str) -> None:
        self.storage, self.scope, self.namespace = storage, scope, namespace
        self.root = f"{scope}/{namespace}"
        self._lock = threading.RLock()
        self._log: dict[str, MemoryEntry] = {}
        self._files: dict[str, list[str]] = {}  # log file -> entry ids
        self._gen: str | None = None
        self._manifest: dict[str, Any] = {"n_docs": 0, "avg_len": 0.0, "rows": 0, "covered": []}
        self._con = duckdb.connect()
        self._views: dict[str, str] = {}

    # --- reading storage ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in a newer base and the log files others wrote since the last look."""
        with self._lock:
            gen = self._latest_gen()
            if gen != self._gen:
                self._gen, self._views = gen, {}
                self._manifest = json.loads(self.storage.read_bytes(f"{self.root}/base/{gen}/manifest.json")) if gen else {
                    "n_docs": 0, "avg_len": 0.0, "rows": 0, "covered": []}
                self._log, self._files = {}, {}
            covered = set(self._manifest["covered"])
            for rel in self.storage.files(f"{self.root}/log", suffix=".parquet"):
                if rel in self._files or rel.rsplit("/", 1)[-1] in covered:
                    continue
                try:
                    rows = self.storage.read_table(rel).to_pylist()
                except FileNotFoundError:
                    continue  # merged away meanwhile: its entries are in the merged file
                entries = from_rows(rows)
                self._files[rel] = [e.id for e in entries]
                self._log.update((e.id, e) for e in entries)

    def _latest_gen(self) -> str | None:
        gens = [g for g in self.storage.dirs(f"{self.root}/base")
                if self.storage.is_file(f"{self.root}/base/{g}/manifest.json")]
        return max(gens) if gens else None

    def _view(self, part: str) -> str | None:
        """A DuckDB relation over the base's ``entries`` or ``postings`` (``None``: no base yet)."""
        if self._gen is None:
            return None
        if part not in self._views:
            rel = f"{self.root}/base/{self._gen}/{part}"
            if self.storage.local:
                self._views[part] = f"read_parquet('{self.storage.path(rel)}/*.parquet')"
            else:
                name = f"{part}_{uuid.uuid4().hex[:8]}"
                schema = ARROW_SCHEMA if part == "entries" else POSTINGS_SCHEMA
                self._con.register(name, self.storage.dataset(self.storage.file_infos(rel, suffix=".parquet"), rel,
                                                              schema=schema))
                self._views[part] = name
        return self._views[part]

    def _base_rows(self, where: str, params: list[Any] | None = None) -> list[MemoryEntry]:
        view = self._view("entries")
        if view is None:
            return []
        cur = self._con.execute(f"SELECT * FROM {view} WHERE {where}", params or [])
        names = [d[0] for d in cur.description]
        return from_rows([dict(zip(names, row, strict=True)) for row in cur.fetchall()])

    # --- entries ------------------------------------------------------------------------------
    def current(self, key: str) -> MemoryEntry | None:
        """The newest version of ``key`` (a tombstone included), or ``None``."""
        versions = self.history(key)
        return versions[-1] if versions else None

    def history(self, key: str) -> list[MemoryEntry]:
        """Every version of ``key``, oldest first (forgotten and superseded ones included)."""
        with self._lock:
            found = {e.id: e for e in self._base_rows(f"key = {_sql_list([key])}")}  # a literal: pushed down
            found.update((i, e) for i, e in self._log.items() if e.key == key)
            return sorted(found.values(), key=_key)

    def append(self, entries: list[MemoryEntry]) -> None:
        """Write entries as one new log file; on storage when this returns."""
        with self._lock:
            rel = self.storage.write_parquet(f"{self.root}/log", to_table(entries))
            self._files[rel] = [e.id for e in entries]
            self._log.update((e.id, e) for e in entries)
            if len(self._log) >= LOG_ROWS_COMPACT:
                self.compact()
            elif len(self._files) >= LOG_FILES_MERGE:
                self._merge_log()

    def _log_current(self) -> dict[str, MemoryEntry]:
        newest: dict[str, MemoryEntry] = {}
        for e in self._log.values():
            if e.key not in newest or _key(e) > _key(newest[e.key]):
                newest[e.key] = e
        return newest

    # --- recall -------------------------------------------------------------------------------
    def search(self, query: str, k: int, now: datetime | None = None) -> list[RecalledEntry]:
        """The ``k`` current, live entries that best match ``query`` (BM25; newer first on a tie)."""
        terms = sorted(set(tokens(query)))
        if not terms or k <= 0:
            return []
        now = now or datetime.now(UTC)
        with self._lock:
            log_docs = {e.id: (e, Counter(doc_tokens(e.key, e.value))) for e in self._log_current().values()
                        if e.live(now)}
            touched = {e.key for e in self._log.values()}
            df: Counter[str] = Counter()
            for _, counts in log_docs.values():
                df.update(t for t in terms if t in counts)
            base_n, base_avg = int(self._manifest["n_docs"]), float(self._manifest["avg_len"])
            postings = self._view("postings")
            if postings is not None:
                where = f"term IN ({_sql_list(terms)}) AND (expires_at IS NULL OR expires_at > ?)"
                for term, n in self._con.execute(f"SELECT term, count(*) FROM {postings} WHERE {where} GROUP BY term",
                                                 [now]).fetchall():
                    df[term] += n
            n_docs = base_n + len(log_docs)
            lens = sum(sum(c.values()) for _, c in log_docs.values())
            avg = (base_avg * base_n + lens) / max(n_docs, 1)
            hits: list[RecalledEntry] = []
            for e, counts in log_docs.values():
                score = bm25(terms, counts, sum(counts.values()), n_docs=n_docs, avg_len=avg, df=df)
                if score > 0:
                    hits.append(RecalledEntry(entry=e, score=score))
            if postings is not None and any(df.values()):
                hits += self._search_base(postings, terms, df, n_docs, avg, k + len(touched), now, touched)
            hits.sort(key=lambda h: (h.score, h.entry.created_at), reverse=True)
            return hits[:k]

    def _search_base(self, postings: str, terms: list[str], df: Counter[str], n_docs: int, avg: float, limit: int,
                     now: datetime, touched: set[str]) -> list[RecalledEntry]:
        dfs = ", ".join(f"('{t}', {df[t]})" for t in terms if df[t])
        where = f"term IN ({_sql_list(terms)}) AND (expires_at IS NULL OR expires_at > ?)"
        top = self._con.execute(
            f"SELECT id, key, sum({bm25_sql(n_docs, avg)}) AS s, max(created_at) AS c "
            f"FROM {postings} JOIN (VALUES {dfs}) AS d(term, df) USING (term) WHERE {where} "
            f"GROUP BY id, key ORDER BY s DESC, c DESC LIMIT {int(limit)}", [now]).fetchall()
        scores = {i: s for i, key, s, _ in top if key not in touched}
        if not scores:
            return []
        entries = self._base_rows(f"id IN ({_sql_list(scores)})")
        return [RecalledEntry(entry=e, score=float(scores[e.id])) for e in entries]

    # --- compaction ---------------------------------------------------------------------------
    def _merge_log(self) -> None:
        """Replace the log's files by one (readers that race it dedupe entries by id)."""
        old = list(self._files)
        rel = self.storage.write_parquet(f"{self.root}/log", to_table(list(self._log.values())))
        self._files = {rel: list(self._log)}
        for f in old:
            self.storage.delete(f)

    def compact(self) -> str | None:
        """Fold the log into a new base generation (history kept; postings of the current live entries);
        returns the generation, or ``None`` when there was nothing to fold."""
        with self._lock:
            self.refresh()
            if not self._log:
                return self._gen
            now = datetime.now(UTC)
            log = list(self._log.values())
            touched = {e.key for e in log}
            fresh = [e for e in self._log_current().values() if e.live(now)]
            entries, postings = self._view("entries"), self._view("postings")
            self._con.register("log_entries", to_table(log))
            self._con.register("log_postings", postings_table(fresh))
            sql_e = "SELECT * FROM log_entries" + (f" UNION ALL SELECT * FROM {entries}" if entries else "")
            sql_p = "SELECT * FROM log_postings"
            if postings:
                self._con.register("touched", pa.table({"key": sorted(touched)}, schema=pa.schema([("key", pa.string())])))
                sql_p += (f" UNION ALL SELECT * FROM {postings} WHERE key NOT IN (SELECT key FROM touched) "
                          "AND (expires_at IS NULL OR expires_at > ?)")
            all_e = self._con.sql(sql_e + " ORDER BY key, version").to_arrow_table()
            all_p = self._con.sql(sql_p + " ORDER BY term, id", params=[now] if postings else None).to_arrow_table()
            for name in ("log_entries", "log_postings", *(["touched"] if postings else [])):
                self._con.unregister(name)
            return self._write_base(all_e.cast(ARROW_SCHEMA), all_p.cast(POSTINGS_SCHEMA))

    def write_base(self, entries: pa.Table, postings: pa.Table) -> str:
        """Write a new base from tables in :data:`ARROW_SCHEMA` / :data:`POSTINGS_SCHEMA` (bulk loads)."""
        with self._lock:
            self.refresh()
            return self._write_base(entries, postings)

    def _write_base(self, entries: pa.Table, postings: pa.Table) -> str:
        gen = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        base = f"{self.root}/base/{gen}"
        self.storage.write_parquet(f"{base}/entries", entries, row_group_size=_ROW_GROUP)
        self.storage.write_parquet(f"{base}/postings", postings, row_group_size=_ROW_GROUP)
        self._con.register("postings_new", postings)
        stats = self._con.execute("SELECT count(*), coalesce(avg(dl), 0) FROM (SELECT DISTINCT id, dl FROM postings_new)").fetchall()[0]
        self._con.unregister("postings_new")
        covered = [f.rsplit("/", 1)[-1] for f in self._files]
        manifest = {"n_docs": int(stats[0]), "avg_len": float(stats[1]), "rows": entries.num_rows, "covered": covered}
        self.storage.write_bytes(f"{base}/manifest.json", json.dumps(manifest).encode())
        for f in list(self._files):
            self.storage.delete(f)
        for old in self.storage.dirs(f"{self.root}/base"):
            if old < gen:
                for f in self.storage.files(f"{self.root}/base/{old}", recursive=True):
                    self.storage.delete(f)
        self._gen, self._views, self._manifest, self._log, self._files = gen, {}, manifest, {}, {}
        return gen

    def load_base(self, entries: list[MemoryEntry]) -> str:
        """Write ``entries`` (current ones, distinct keys) straight into a new base: bulk loads, benchmarks."""
        with self._lock:
            self.refresh()
            if self._log or self._gen:
                raise ValueError("load_base needs an empty namespace")
            return self._write_base(to_table(entries), postings_table(entries))

    @property
    def log_size(self) -> int:
        return len(self._log)


def postings_table(entries: list[MemoryEntry]) -> pa.Table:
    """The postings of ``entries``, sorted by term."""
    rows: list[tuple[str, str, str, int, int, datetime, datetime | None]] = []
    for e in entries:
        counts = Counter(doc_tokens(e.key, e.value))
        dl = sum(counts.values())
        rows.extend((t, e.id, e.key, n, dl, e.created_at, e.expires_at) for t, n in counts.items())
    rows.sort()
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in POSTINGS_SCHEMA.names]
    return pa.table(dict(zip(POSTINGS_SCHEMA.names, cols, strict=True)), schema=POSTINGS_SCHEMA)




__all__ = ["LOG_FILES_MERGE", "LOG_ROWS_COMPACT", "POSTINGS_SCHEMA", "MemoryStore", "postings_table"]
