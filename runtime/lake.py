"""The event lake on disk: hive-partitioned Parquet files and a DuckDB view over them.

Layout: ``<root>/events/date=YYYY-MM-DD/run_id=<id>/part-<uuid>.parquet`` (zstd). ``run_id`` is
kept inside the files as well as in the path, so a single file is self-describing; DuckDB's hive
partitioning merges the two into one ``run_id`` column (the path value wins) and adds ``date``.
Run ids are percent-encoded in the path (DuckDB decodes hive values), so any string is safe.

Files appear atomically (written under a dot-prefixed ``.tmp`` name, then renamed), so a reader
never sees half a file. Many small sessions would become many tiny files, which makes scans slow;
:func:`compact_run` merges a run's files into one per date when the run ends.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime.errors import TroupeError
from runtime.events import ARROW_SCHEMA

EVENTS_DIR: Final = "events"
COMPRESSION: Final = "zstd"
WRITE_ROW_GROUP: Final = 128 * 1024
"""Row group size for ordinary part files (a flush is at most a few tens of thousands of rows)."""
COMPACT_ROW_GROUP: Final = 512 * 1024
"""Row group size of compacted files: large enough to scan fast, small enough for parallel scans."""

_DUCK_TYPES: Final[dict[pa.DataType, str]] = {
    pa.int16(): "SMALLINT",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}

Format = Literal["table", "json", "csv"]


class LakeQueryError(TroupeError):
    """A query over the lake failed; the message is DuckDB's."""


def default_lake() -> Path:
    """The lake directory: ``$TROUPE_LAKE`` or ``./.troupe/lake``, made absolute.

    Absolute because the path is handed to an actor whose working directory may differ.
    """
    return Path(os.environ.get("TROUPE_LAKE") or "./.troupe/lake").expanduser().resolve()


def partition_dir(root: str | Path, day: str, run_id: str) -> Path:
    """The directory holding one run's files for one UTC day."""
    return Path(root) / EVENTS_DIR / f"date={day}" / f"run_id={quote(run_id, safe='')}"


def _to_table(data: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    if isinstance(data, pa.Table):
        return data if data.schema.equals(ARROW_SCHEMA) else data.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
    return pa.Table.from_pydict({name: data[name] for name in ARROW_SCHEMA.names}, schema=ARROW_SCHEMA)


def _atomic_write(table: pa.Table, directory: Path, row_group_size: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = directory / f".{name}.tmp"
    try:
        pq.write_table(table, tmp, compression=COMPRESSION, row_group_size=row_group_size)
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return directory / name


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

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, data: pa.Table | Mapping[str, Sequence[Any]]) -> list[Path]:
        """Write a batch (an Arrow table or the column dict of ``events_to_columns``); returns the new files."""
        table = _to_table(data)
        if table.num_rows == 0:
            return []
        if table["ts"].null_count or table["run_id"].null_count:
            raise ValueError("every event needs a ts and a run_id to be partitioned")
        return [
            _atomic_write(part, partition_dir(self.root, day, run_id), WRITE_ROW_GROUP)
            for day, run_id, part in _split(table)
        ]


@dataclass(frozen=True)
class CompactionResult:
    """What :func:`compact_run` did: files merged away, files written, rows rewritten."""

    files_before: int
    files_after: int
    rows: int


def compact_run(root: str | Path, run_id: str) -> CompactionResult:
    """Merge each date directory of a run into one file sorted by ``ts``.

    The new file is renamed into place before the old ones are removed, so no row is ever
    missing; a reader globbing in that instant may see a row twice or miss a deleted file
    (a retry fixes it). Files written concurrently (not yet listed) are left alone.
    """
    before = after = rows = 0
    enc = quote(run_id, safe="")
    for run_dir in sorted((Path(root) / EVENTS_DIR).glob(f"date=*/run_id={enc}")):
        parts = sorted(run_dir.glob("*.parquet"))
        before += len(parts)
        if len(parts) <= 1:
            after += len(parts)
            continue
        tables = [pq.read_table(p) for p in parts]
        merged = pa.concat_tables(tables, promote_options="default")
        merged = merged.sort_by([("ts", "ascending"), ("seq", "ascending")])
        _atomic_write(merged, run_dir, COMPACT_ROW_GROUP)
        for p in parts:
            p.unlink(missing_ok=True)
        after += 1
        rows += merged.num_rows
    return CompactionResult(files_before=before, files_after=after, rows=rows)


def _has_files(root: Path) -> bool:
    events = root / EVENTS_DIR
    return events.is_dir() and any(events.glob("date=*/run_id=*/*.parquet"))


def _empty_select() -> str:
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in ARROW_SCHEMA)
    return f"SELECT {cols}, CAST(NULL AS DATE) AS date WHERE false"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def refresh(con: duckdb.DuckDBPyConnection, root: str | Path) -> None:
    """(Re)create the ``events`` view; needed only when a connection opened on an empty lake
    should start seeing files (the glob itself is re-read by every query)."""
    root = Path(root)
    if _has_files(root):
        glob = _sql_str(str(root / EVENTS_DIR / "**" / "*.parquet"))
        body = (
            f"SELECT * FROM read_parquet({glob}, hive_partitioning=true, union_by_name=true, "
            "hive_types={'date': 'DATE', 'run_id': 'VARCHAR'})"
        )
    else:
        body = _empty_select()
    con.sql(f"CREATE OR REPLACE VIEW events AS {body}")


def connect(root: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``events`` view (zero rows on an empty lake)."""
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    refresh(con, root)
    return con


def query(root: str | Path, sql: str) -> pa.Table:
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
    "format_table",
    "partition_dir",
    "query",
    "refresh",
]
