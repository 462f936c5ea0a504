"""The event lake: hive-partitioned Parquet files and a DuckDB view over them.

Layout: ``<root>/events/date=YYYY-MM-DD/run_id=<id>/part-<uuid>.parquet`` (zstd). ``run_id`` is
kept inside the files as well as in the path, so a single file is self-describing; DuckDB's hive
partitioning merges the two into one ``run_id`` column (the path value wins) and adds ``date``.
Run ids are percent-encoded in the path (DuckDB decodes hive values), so any string is safe.

The root is a local directory or any ``pyarrow.fs`` URI (``s3://bucket/prefix?...``, ``gs://...``;
see :mod:`troupe.runtime.storage.location`). DuckDB globs local files itself (each query re-reads the glob); for
other locations it scans a ``pyarrow.dataset`` of the files listed when the view was (re)built, so
a long-lived connection calls :func:`refresh` to see newer files. No DuckDB extension is needed.

Files appear atomically (see :mod:`troupe.runtime.storage.location`), so a reader never sees half a file. Many
small sessions would become many tiny files, which makes scans slow; :func:`compact_run` merges a
run's files into one per date when the run ends.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from troupe.runtime.errors import TroupeError
from troupe.runtime.events import ARROW_SCHEMA
from troupe.runtime.events.arrow import empty_select
from troupe.runtime.storage.location import LakeLocationError, Ref, Storage, is_uri, open_storage

EVENTS_DIR: Final = "events"
COMPRESSION: Final = "zstd"
WRITE_ROW_GROUP: Final = 128 * 1024
"""Row group size for ordinary part files (a flush is at most a few tens of thousands of rows)."""
COMPACT_ROW_GROUP: Final = 512 * 1024
"""Row group size of compacted files: large enough to scan fast, small enough for parallel scans."""

_PARTITIONING: Final = ds.partitioning(pa.schema([("date", pa.date32()), ("run_id", pa.string())]), flavor="hive")
_VIEW_SCHEMA: Final = ARROW_SCHEMA.append(pa.field("date", pa.date32()))
"""The ``events`` view's columns: the file schema plus the ``date`` hive key (``run_id`` is in both)."""
_EVENTS_DATA: Final = "_troupe_events_data"
"""The name a non-local lake's dataset is registered under on a DuckDB connection."""

Format = Literal["table", "json", "csv"]


class LakeQueryError(TroupeError):
    """A query over the lake failed; the message is DuckDB's."""


def default_lake() -> Path | str:
    """The lake: ``$TROUPE_LAKE`` or ``./.troupe/lake``; a local directory made absolute (it is
    handed to actors whose working directory may differ), a URI (``s3://...``) as given."""
    value = os.environ.get("TROUPE_LAKE") or "./.troupe/lake"
    return value if is_uri(value) else open_storage(value).ref()


def _partition_rel(day: str, run_id: str) -> str:
    return f"{EVENTS_DIR}/date={day}/run_id={quote(run_id, safe='')}"


def partition_dir(root: str | Path | Storage, day: str, run_id: str) -> Ref:
    """The directory holding one run's files for one UTC day (a ``Path``, or a URI off this machine)."""
    return open_storage(root).ref(_partition_rel(day, run_id))


def _to_table(data: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    if isinstance(data, pa.Table):
        return data if data.schema.equals(ARROW_SCHEMA) else data.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
    return pa.Table.from_pydict({name: data[name] for name in ARROW_SCHEMA.names}, schema=ARROW_SCHEMA)


def _write_part(storage: Storage, table: pa.Table, rel_dir: str, row_group_size: int) -> str:
    return storage.write_parquet(rel_dir, table, compression=COMPRESSION, row_group_size=row_group_size)


def _split(table: pa.Table) -> list[tuple[str, str, pa.Table]]:
    """Split a batch by (UTC date of ``ts``, ``run_id``); usually there is a single group."""
    days = pc.cast(pc.cast(table["ts"], pa.timestamp("us")), pa.date32())
    keys = pa.table({"d": days, "r": table["run_id"]})
    first_d, first_r = days[0], table["run_id"][0]
    if pc.all(pc.equal(days, first_d)).as_py() and pc.all(pc.equal(table["run_id"], first_r)).as_py():
        return [(str(first_d.as_py()), first_r.as_py(), table)]
    idx = keys.append_column("i", pa.array(range(table.num_rows), pa.int64()))
    groups = idx.group_by(["d", "r"], use_threads=False).aggregate([("i", "list")])
    return [
        (str(d), r, table.take(pa.array(rows, pa.int64())))
        for d, r, rows in zip(
            groups["d"].to_pylist(), groups["r"].to_pylist(), groups["i_list"].to_pylist(), strict=True
        )
    ]


class LakeWriter:
    """Writes batches of events into the lake, one new file per (date, run) in the batch."""

    def __init__(self, root: str | Path | Storage) -> None:
        self.storage = open_storage(root)
        self.root = self.storage.ref()

    def write(self, data: pa.Table | Mapping[str, Sequence[Any]]) -> list[Ref]:
        """Write a batch (an Arrow table or the column dict of ``events_to_columns``); returns the new files."""
        table = _to_table(data)
        if table.num_rows == 0:
            return []
        if table["ts"].null_count or table["run_id"].null_count:
            raise ValueError("every event needs a ts and a run_id to be partitioned")
        return [
            self.storage.ref(_write_part(self.storage, part, _partition_rel(day, run_id), WRITE_ROW_GROUP))
            for day, run_id, part in _split(table)
        ]


@dataclass(frozen=True)
class CompactionResult:
    """What :func:`compact_run` did: files merged away, files written, rows rewritten."""

    files_before: int
    files_after: int
    rows: int


def compact_run(root: str | Path | Storage, run_id: str) -> CompactionResult:
    """Merge each date directory of a run into one file sorted by ``ts``.

    The new file is in place (renamed, or uploaded to an object store) before the old ones are
    removed, so no row is ever missing; a reader listing in that instant may see a row twice or
    miss a deleted file (a retry fixes it). Files written concurrently (not yet listed) are left alone.
    """
    storage = open_storage(root)
    before = after = rows = 0
    enc = quote(run_id, safe="")
    for day in storage.dirs(EVENTS_DIR):
        if not day.startswith("date="):
            continue
        run_dir = f"{EVENTS_DIR}/{day}/run_id={enc}"
        parts = storage.files(run_dir, suffix=".parquet")
        before += len(parts)
        if len(parts) <= 1:
            after += len(parts)
            continue
        tables = [storage.read_table(p) for p in parts]
        merged = pa.concat_tables(tables, promote_options="default")
        merged = merged.sort_by([("ts", "ascending"), ("seq", "ascending")])
        _write_part(storage, merged, run_dir, COMPACT_ROW_GROUP)
        for p in parts:
            storage.delete(p)
        after += 1
        rows += merged.num_rows
    return CompactionResult(files_before=before, files_after=after, rows=rows)


def _has_files(root: Path) -> bool:
    events = root / EVENTS_DIR
    return events.is_dir() and any(events.glob("date=*/run_id=*/*.parquet"))


def _empty_select() -> str:
    return empty_select(_VIEW_SCHEMA)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _events_select(con: duckdb.DuckDBPyConnection, storage: Storage) -> str:
    if storage.local:
        root = Path(storage.base)
        if not _has_files(root):
            return _empty_select()
        glob = _sql_str(str(root / EVENTS_DIR / "**" / "*.parquet"))
        return (
            f"SELECT * FROM read_parquet({glob}, hive_partitioning=true, union_by_name=true, "
            "hive_types={'date': 'DATE', 'run_id': 'VARCHAR'})"
        )
    try:
        files = storage.file_infos(EVENTS_DIR, suffix=".parquet", recursive=True)
    except OSError as e:
        raise LakeLocationError(f"cannot list the lake at {storage}: {e}", location=str(storage)) from None
    if not files:
        storage.check()  # an empty lake, or a bucket that is not there?
        return _empty_select()
    con.register(_EVENTS_DATA, storage.dataset(files, EVENTS_DIR, schema=_VIEW_SCHEMA, partitioning=_PARTITIONING))
    return f"SELECT * FROM {_EVENTS_DATA}"


def events_dataset(root: str | Path | Storage) -> ds.Dataset | None:
    """The lake's events as a pyarrow dataset in the ``events`` view's columns (``None``: no file yet):
    what a connection that may read no file itself scans (``troupe serve``'s SQL for a user's key)."""
    storage = open_storage(root)
    files = storage.file_infos(EVENTS_DIR, suffix=".parquet", recursive=True)
    if not files:
        return None
    return storage.dataset(files, EVENTS_DIR, schema=_VIEW_SCHEMA, partitioning=_PARTITIONING)


def refresh(con: duckdb.DuckDBPyConnection, root: str | Path | Storage) -> None:
    """(Re)create the ``events`` view. On local disk it is needed only when a connection opened on
    an empty lake should start seeing files (the glob itself is re-read by every query); elsewhere
    the view holds the files listed here, so call it again to see newer (or compacted) files."""
    con.sql(f"CREATE OR REPLACE VIEW events AS {_events_select(con, open_storage(root))}")


def connect(root: str | Path | Storage) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``events`` view (zero rows on an empty lake)."""
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        refresh(con, root)
    except BaseException:
        con.close()
        raise
    return con


def query(root: str | Path | Storage, sql: str) -> pa.Table:
    """Run one SQL statement against the lake; raises :class:`LakeQueryError` with DuckDB's message."""
    con = connect(root)
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as e:
        raise LakeQueryError(f"query failed: {e}", sql=sql) from None
    finally:
        con.close()


def _cell(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _text(value: Any, max_width: int | None) -> str:
    text = "" if value is None else str(_cell(value))
    text = text.replace("\n", "\\n")
    if max_width is not None and len(text) > max_width:
        text = text[: max_width - 1] + "…"
    return text


def format_table(table: pa.Table, fmt: Format = "table", *, max_width: int | None = 60) -> str:
    """Render a result: ``table`` (aligned plain-text columns, long cells cut to ``max_width``),
    ``json`` (an array of objects) or ``csv``."""
    rows = table.to_pylist()
    names = table.column_names
    if fmt == "json":
        return json.dumps([{k: _cell(v) for k, v in r.items()} for r in rows], default=str, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        for r in rows:
            writer.writerow(["" if r[n] is None else _cell(r[n]) for n in names])
        return buf.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use 'table', 'json' or 'csv'")
    cells = [[_text(r[n], max_width) for n in names] for r in rows]
    widths = [max([len(n), *(len(c[i]) for c in cells)]) for i, n in enumerate(names)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]

    def line(values: list[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    lines = [line(list(names)), "  ".join("-" * w for w in widths), *(line(c) for c in cells)]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


__all__ = [
    "CompactionResult",
    "LakeQueryError",
    "LakeWriter",
    "compact_run",
    "connect",
    "default_lake",
    "events_dataset",
    "format_table",
    "partition_dir",
    "query",
    "refresh",
]
