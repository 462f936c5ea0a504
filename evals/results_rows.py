"""Result rows: one :class:`~troupe.evals.models.SampleResult` per Parquet row, appended and never
rewritten; compaction merges a run's parts when the sweep ends.

The Arrow schema is derived from the model by :mod:`troupe.runtime.events.arrow` (the same mapping
as the event lake's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from troupe.evals.models import SampleResult
from troupe.evals.results_paths import COMPRESSION, EvalStoreError, Lake, part_files, results_rel, utc
from troupe.runtime.eventlog.lake import CompactionResult
from troupe.runtime.events.arrow import arrow_schema
from troupe.runtime.storage.location import Ref, Storage, open_storage

RESULTS_SCHEMA_VERSION: Final = 1

RESULTS_SCHEMA: Final[pa.Schema] = arrow_schema(
    SampleResult, metadata={"troupe.kind": "eval-results", "troupe.schema_version": str(RESULTS_SCHEMA_VERSION)}
)
"""One column per :class:`~troupe.evals.models.SampleResult` field, in model order (``run_id`` is also the
hive partition key)."""


def _write_parquet(st: Storage, table: pa.Table, run_id: str) -> Ref:
    return st.ref(st.write_parquet(results_rel(run_id), table, compression=COMPRESSION))


def to_table(rows: Iterable[SampleResult | Mapping[str, Any]]) -> pa.Table:
    """Rows (models or dicts, validated as :class:`SampleResult`) as an Arrow table of :data:`RESULTS_SCHEMA`."""
    cols: dict[str, list[Any]] = {name: [] for name in RESULTS_SCHEMA.names}
    for i, row in enumerate(rows):
        try:
            model = row if isinstance(row, SampleResult) else SampleResult.model_validate(row)
        except ValidationError as e:
            raise EvalStoreError(f"result row {i} is not a valid SampleResult: {e}") from None
        d = model.__dict__
        for name in cols:
            value = d[name]
            cols[name].append(utc(value) if isinstance(value, datetime) else value)
    return pa.Table.from_pydict(cols, schema=RESULTS_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """A table read from disk (perhaps written by an older schema) in :data:`RESULTS_SCHEMA`'s shape."""
    columns = []
    for field in RESULTS_SCHEMA:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:  # a column added after the file was written: its model default
            default = SampleResult.model_fields[field.name].get_default(call_default_factory=True)
            columns.append(pa.array([default] * table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=RESULTS_SCHEMA)


def write_results(lake: Lake, rows: Iterable[SampleResult | Mapping[str, Any]]) -> list[Ref]:
    """Append rows: one new Parquet file per run id among them (usually one); returns the new files.

    Nothing is written for no rows. Safe to call concurrently (every call writes its own files).
    """
    table = to_table(rows)
    if table.num_rows == 0:
        return []
    st = open_storage(lake)
    run_ids = sorted(set(table["run_id"].to_pylist()))
    written = []
    for run_id in run_ids:
        part = table if len(run_ids) == 1 else table.filter(pc.equal(table["run_id"], run_id))
        written.append(_write_parquet(st, part, run_id))
    return written


def read_parts(st: Storage, parts: list[str]) -> pa.Table:
    return pa.concat_tables([conform(st.read_table(p)) for p in parts])


def compact(lake: Lake, run_id: str) -> CompactionResult:
    """Merge a run's result files into one, sorted by cell, case and sample (every row kept).

    The new file is in place (renamed, or uploaded to an object store) before the old ones are
    removed, so no row is ever missing; files written concurrently (not yet listed) are left alone.
    """
    st = open_storage(lake)
    parts = part_files(st, run_id)
    if len(parts) <= 1:
        return CompactionResult(files_before=len(parts), files_after=len(parts), rows=0)
    merged = read_parts(st, parts)
    merged = merged.sort_by([("cell", "ascending"), ("case_id", "ascending"), ("sample", "ascending")])
    _write_parquet(st, merged, run_id)
    for p in parts:
        st.delete(p)
    return CompactionResult(files_before=len(parts), files_after=1, rows=merged.num_rows)


def done_sample_ids(lake: Lake, run_id: str, *, retry_errors: bool = False) -> set[str]:
    """The sample ids a run already has rows for (empty for a run with none yet): a resumed sweep skips them.

    With ``retry_errors`` a sample whose only rows are ``error`` rows (it never ran) is not done, so
    a resume runs it again; its new row then supersedes the error row in every reader.
    """
    st = open_storage(lake)
    parts = part_files(st, run_id)
    if not parts:
        return set()
    table = pa.concat_tables([st.read_table(p, columns=["sample_id", "status"]) for p in parts])
    ids = table["sample_id"].to_pylist()
    if not retry_errors:
        return set(ids)
    return {sid for sid, status in zip(ids, table["status"].to_pylist(), strict=True) if status != "error"}


__all__ = ["RESULTS_SCHEMA", "RESULTS_SCHEMA_VERSION", "compact", "conform", "done_sample_ids", "read_parts", "to_table",
           "write_results"]
