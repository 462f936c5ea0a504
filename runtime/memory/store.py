"""One memory namespace on storage: Parquet under ``<memory>/<scope>/<namespace>/``, read with DuckDB.

Layout (any :class:`~troupe.runtime.storage.location.Storage`: a folder, ``s3://...``)::

    log/part-*.parquet             entries written since they were last folded into a base (one file per write)
    base/<gen>/entries/*.parquet   every entry up to a compaction, history included
    base/<gen>/postings/*.parquet  (term, id, key, tf, dl, created_at, expires_at) of the entries current
                                   and not forgotten then, sorted by term: what a recall reads
    base/<gen>/manifest.json       written last: the documents' count and mean length, the log files and
                                   generations folded in (:mod:`~troupe.runtime.memory.generations`)

A write is on storage before :meth:`MemoryStore.append` returns, and nothing written is lost however many
processes write and compact the namespace at once (see :mod:`~troupe.runtime.memory.generations`).
:meth:`MemoryStore.refresh` picks up what other writers (another session, another cluster) added. A recall
scores the primary base in DuckDB (only the postings of the query's terms are read) and the *overlay* (the
entries not in it: the log, another head's) in Python, with the same BM25; a key the overlay touches is
decided over the overlay and the base's versions of that key together.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import pyarrow as pa

from troupe.runtime.memory.generations import Generations, Manifest, new_gen
from troupe.runtime.memory.model import ARROW_SCHEMA, TS, MemoryEntry, RecalledEntry, from_rows, to_table
from troupe.runtime.memory.text import bm25, bm25_sql, doc_tokens, tokens
from troupe.runtime.storage.location import Storage

LOG_FILES_COMPACT: Final = 64
"""Fold the log into a new base once it has this many files, if the base is small (a rewrite is cheap)..."""
SMALL_BASE_ROWS: Final = 50_000
LOG_ROWS_COMPACT: Final = 2_000
"""... and whatever the base's size once the log holds this many entries."""
REFRESH_TRIES: Final = 8
POSTINGS_SCHEMA: Final = pa.schema([("term", pa.string()), ("id", pa.string()), ("key", pa.string()),
                                    ("tf", pa.int32()), ("dl", pa.int32()), ("created_at", TS), ("expires_at", TS)])
_ROW_GROUP: Final = 65_536


def _key(e: MemoryEntry) -> tuple[int, datetime, str]:
    return e.version, e.created_at, e.id


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


class MemoryStore:
    """The entries of one ``scope``/``namespace``. Thread-safe (one lock); not async: callers use threads."""

    def __init__(self, storage: Storage, scope: str, namespace: str) -> None:
        self.storage, self.scope, self.namespace = storage, scope, namespace
        self.root = f"{scope}/{namespace}"
        self._lock = threading.RLock()
        self._gens = Generations(storage, self.root)
        self._gen: str | None = None  # the primary base: the newest head
        self._heads: list[str] = []
        self._manifest = Manifest()
        self._read: dict[str, list[MemoryEntry]] = {}  # log file -> its entries (a file never changes)
        self._files: dict[str, list[str]] = {}  # the uncovered log files -> entry ids
        self._stale: list[str] = []  # log files still listed that a complete base covers
        self._log: dict[str, MemoryEntry] = {}  # the overlay: entries of those files and of the other heads
        self._extra: dict[str, list[MemoryEntry]] = {}  # another head -> its entries the primary lacks
        self._base_top: dict[str, MemoryEntry | None] = {}  # key -> the primary's newest version of it
        self._con = duckdb.connect()
        self._views: dict[str, str] = {}

    # --- reading storage ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in newer bases and the log files others wrote since the last look (a consistent view:
        the bases are listed again after the log, and the look retried when a compaction raced it)."""
        with self._lock:
            for _ in range(REFRESH_TRIES):
                complete = set(self._gens.scan())
                covered = self._gens.covered()
                listed = self.storage.files(f"{self.root}/log", suffix=".parquet")
                files = [f for f in listed if _name(f) not in covered]
                if self._read_logs(files) and set(self._gens.scan()) == complete:
                    break
            self._stale = [f for f in listed if _name(f) in covered]
            self._adopt([f for f in files if f in self._read])

    def _read_logs(self, files: list[str]) -> bool:
        """Read the files not read yet; ``False`` when one vanished (folded in meanwhile: look again)."""
        for rel in files:
            if rel not in self._read:
                try:
                    self._read[rel] = from_rows(self.storage.read_table(rel).to_pylist())
                except FileNotFoundError:
                    return False
        return True

    def _adopt(self, files: list[str]) -> None:
        heads = self._gens.heads()
        primary = heads[-1] if heads else None
        if primary != self._gen:
            self._gen, self._views, self._extra, self._base_top = primary, {}, {}, {}
            self._manifest = self._gens.complete[primary] if primary else Manifest()
        self._heads = heads
        self._extra = {g: self._extra.get(g) or self._head_extra(g) for g in heads[:-1]}
        self._read = {f: self._read[f] for f in files}
        self._files = {f: [e.id for e in self._read[f]] for f in files}
        self._log = {e.id: e for entries in (*self._read.values(), *self._extra.values()) for e in entries}

    def _fill_tops(self) -> None:
        """Look up (once, in one query) the primary's newest version of each key the overlay touches."""
        missing = {e.key for e in self._log.values()} - self._base_top.keys()
        if missing and self._gen is None:
            self._base_top.update(dict.fromkeys(missing))
        elif missing:
            top: dict[str, MemoryEntry | None] = dict.fromkeys(missing)
            for e in self._base_rows(f"key IN ({_sql_list(missing)})"):
                if top[e.key] is None or _key(e) > _key(top[e.key]):  # type: ignore[arg-type]
                    top[e.key] = e
            self._base_top.update(top)

    def _head_extra(self, gen: str) -> list[MemoryEntry]:
        """The entries of head ``gen`` that the primary base lacks (a compaction that ran beside another)."""
        other = self._parquet(f"{self.root}/base/{gen}/entries", ARROW_SCHEMA)
        mine = self._view("entries")
        cur = self._con.execute(f"SELECT * FROM {other} WHERE id NOT IN (SELECT id FROM {mine})")
        names = [d[0] for d in cur.description]
        return from_rows([dict(zip(names, row, strict=True)) for row in cur.fetchall()])

    def _parquet(self, rel: str, schema: pa.Schema) -> str:
        if self.storage.local:
            return f"read_parquet('{self.storage.path(rel)}/*.parquet')"
        name = f"v_{uuid.uuid4().hex[:12]}"
        self._con.register(name, self.storage.dataset(self.storage.file_infos(rel, suffix=".parquet"), rel, schema=schema))
        return name

    def _view(self, part: str) -> str | None:
        """A DuckDB relation over the primary base's ``entries`` or ``postings`` (``None``: no base yet)."""
        if self._gen is None:
            return None
        if part not in self._views:
            self._views[part] = self._parquet(f"{self.root}/base/{self._gen}/{part}",
                                              ARROW_SCHEMA if part == "entries" else POSTINGS_SCHEMA)
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
            self._read[rel] = list(entries)
            self._files[rel] = [e.id for e in entries]
            self._log.update((e.id, e) for e in entries)
            if len(self._log) >= LOG_ROWS_COMPACT or (
                    len(self._files) >= LOG_FILES_COMPACT and self._manifest.rows <= SMALL_BASE_ROWS):
                self.compact()

    def _log_current(self) -> dict[str, MemoryEntry]:
        """The current entry of each key the overlay touches (over the overlay and the base's versions)."""
        self._fill_tops()
        newest: dict[str, MemoryEntry] = {}
        for e in self._log.values():
            if e.key not in newest or _key(e) > _key(newest[e.key]):
                newest[e.key] = e
        for key, e in list(newest.items()):
            top = self._base_top.get(key)
            if top is not None and _key(top) > _key(e):
                newest[key] = top
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
            base_n, base_avg = self._manifest.n_docs, self._manifest.avg_len
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
    def compact(self) -> str | None:
        """Fold the heads and the log into a new base generation (history kept; postings of the current live
        entries); returns the primary generation afterwards. Safe beside other writers and compactors."""
        with self._lock:
            self.refresh()
            if not self._log and len(self._heads) <= 1 and not self._stale:
                return self._gen
            now = datetime.now(UTC)
            touched = {e.key for e in self._log.values()}
            fresh = [e for e in self._log_current().values() if e.live(now)]
            entries, postings = self._view("entries"), self._view("postings")
            log = list(self._log.values())
            if entries and log:  # a log file folded in and merged back by an older writer: once by id
                self._con.register("log_ids", pa.table({"id": [e.id for e in log]}))
                known = {r[0] for r in self._con.execute(f"SELECT id FROM {entries} WHERE id IN (SELECT id FROM log_ids)").fetchall()}
                self._con.unregister("log_ids")
                log = [e for e in log if e.id not in known]
            self._con.register("log_entries", to_table(log))
            self._con.register("log_postings", postings_table(fresh))
            sql_e = "SELECT * FROM log_entries" + (f" UNION ALL BY NAME SELECT * FROM {entries}" if entries else "")
            sql_p = "SELECT * FROM log_postings"
            if postings:
                self._con.register("touched", pa.table({"key": sorted(touched)}, schema=pa.schema([("key", pa.string())])))
                sql_p += (f" UNION ALL SELECT * FROM {postings} WHERE key NOT IN (SELECT key FROM touched) "
                          "AND (expires_at IS NULL OR expires_at > ?)")
            all_e = self._con.sql(sql_e + " ORDER BY key, version").to_arrow_table()
            all_p = self._con.sql(sql_p + " ORDER BY term, id", params=[now] if postings else None).to_arrow_table()
            for name in ("log_entries", "log_postings", *(["touched"] if postings else [])):
                self._con.unregister(name)
            return self._write_base(all_e.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA), all_p.cast(POSTINGS_SCHEMA))

    def write_base(self, entries: pa.Table, postings: pa.Table) -> str:
        """Write a new base from tables in :data:`ARROW_SCHEMA` / :data:`POSTINGS_SCHEMA` (bulk loads into an
        empty namespace)."""
        with self._lock:
            self.refresh()
            if self._log or self._gen:
                raise ValueError("write_base needs an empty namespace")
            return self._write_base(entries, postings)

    def _write_base(self, entries: pa.Table, postings: pa.Table) -> str:
        gen = new_gen()
        base = f"{self.root}/base/{gen}"
        self.storage.write_parquet(f"{base}/entries", entries, row_group_size=_ROW_GROUP)
        self.storage.write_parquet(f"{base}/postings", postings, row_group_size=_ROW_GROUP)
        self._con.register("postings_new", postings)
        stats = self._con.execute("SELECT count(*), coalesce(avg(dl), 0) FROM (SELECT DISTINCT id, dl FROM postings_new)").fetchall()[0]
        self._con.unregister("postings_new")
        folded = [*self._files, *self._stale]
        manifest = Manifest(n_docs=int(stats[0]), avg_len=float(stats[1]), rows=entries.num_rows,
                            covered=[_name(f) for f in folded], parents=list(self._heads))
        self._gens.write(gen, manifest)  # complete: only now may what it folded in go
        for f in folded:
            self.storage.delete(f)
        self._gens.collect()
        self._gen, self._heads, self._views, self._manifest = gen, [gen], {}, manifest
        self._log, self._files, self._read, self._stale, self._extra, self._base_top = {}, {}, {}, [], {}, {}
        return gen

    def load_base(self, entries: list[MemoryEntry]) -> str:
        """Write ``entries`` (current ones, distinct keys) straight into a new base: bulk loads, benchmarks."""
        return self.write_base(to_table(entries), postings_table(entries))

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
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in POSTINGS_SCHEMA.names]
    return pa.table(dict(zip(POSTINGS_SCHEMA.names, cols, strict=True)), schema=POSTINGS_SCHEMA)


__all__ = ["LOG_FILES_COMPACT", "LOG_ROWS_COMPACT", "POSTINGS_SCHEMA", "SMALL_BASE_ROWS", "MemoryStore",
           "postings_table"]
