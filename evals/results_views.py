"""DuckDB over the results: the ``results`` and ``results_raw`` views beside ``events``, and one run's
rows as a table. Readers keep one row per ``(run_id, sample_id)``: a row that ran beats an ``error``
row, then the latest ``finished_at`` wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from troupe.evals.results_paths import RESULTS_DIR, Lake, manifest_rel, part_files, results_rel, unknown_run
from troupe.evals.results_rows import RESULTS_SCHEMA, conform, read_parts
from troupe.runtime.eventlog.lake import connect as connect_events
from troupe.runtime.eventlog.lake import refresh as refresh_events
from troupe.runtime.events.arrow import empty_select
from troupe.runtime.storage.location import LakeLocationError, Storage, open_storage


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_parquet(glob: str) -> str:
    return (
        f"read_parquet({_sql_str(glob)}, hive_partitioning=true, union_by_name=true, "
        "hive_types={'run_id': 'VARCHAR'})"
    )


def _dedup_select(source: str) -> str:
    """One row per ``(run_id, sample_id)`` of ``source`` (a table expression)."""
    return (
        f"SELECT * FROM {source} "
        "QUALIFY row_number() OVER (PARTITION BY run_id, sample_id "
        "ORDER BY (status <> 'error') DESC, finished_at DESC NULLS LAST) = 1"
    )


RESULTS_DATA: Final = "_troupe_results_data"
"""The name a non-local lake's results dataset is registered under on a DuckDB connection."""


_RUN_PARTITIONING: Final = ds.partitioning(pa.schema([("run_id", pa.string())]), flavor="hive")


def _results_source(con: duckdb.DuckDBPyConnection, st: Storage) -> str | None:
    """What the ``results`` views select from: a ``read_parquet`` glob on local disk, else a
    registered dataset of the files listed now; ``None`` while there are no result files."""
    if st.local:
        root = Path(st.path(RESULTS_DIR))
        if root.is_dir() and any(root.glob("run_id=*/*.parquet")):
            return _read_parquet(str(root / "*" / "*.parquet"))
        return None
    try:
        files = st.file_infos(RESULTS_DIR, suffix=".parquet", recursive=True)
    except OSError as e:
        raise LakeLocationError(f"cannot list the eval results at {st}: {e}", location=str(st)) from None
    if not files:
        return None
    con.register(RESULTS_DATA, st.dataset(files, RESULTS_DIR, schema=RESULTS_SCHEMA, partitioning=_RUN_PARTITIONING))
    return RESULTS_DATA


def refresh(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """(Re)create the ``results`` and ``results_raw`` views (and ``events``): on local disk needed
    only when a connection opened before the first result file was written should start seeing
    results; off this machine the views hold the files listed here (call again to see newer ones)."""
    st = open_storage(lake)
    refresh_events(con, st)
    source = _results_source(con, st)
    if source is not None:
        raw = f"SELECT * FROM {source}"
        dedup = _dedup_select(source)
    else:
        raw = dedup = empty_select(RESULTS_SCHEMA)
    con.sql(f"CREATE OR REPLACE VIEW results_raw AS {raw}")
    con.sql(f"CREATE OR REPLACE VIEW results AS {dedup}")


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views ``events`` (the event lake), ``results`` (every
    run's result rows, one per sample; ``run_id`` is a column) and ``results_raw`` (every row written).

    ``con.sql("select r.case_id, e.type from results r join events e using (session_id)")``.
    """
    st = open_storage(lake)
    con = connect_events(st)
    try:
        refresh(con, st)
    except BaseException:
        con.close()
        raise
    return con


def results_table(lake: Lake, run_id: str) -> pa.Table:
    """A run's rows (one per sample) sorted by cell, case and sample, in :data:`RESULTS_SCHEMA`.

    Empty for a run that has a manifest but no rows yet; :class:`UnknownRunError` for neither.
    """
    st = open_storage(lake)
    parts = part_files(st, run_id)
    if not parts:
        if not st.is_file(manifest_rel(run_id)):
            raise unknown_run(st, run_id)
        return RESULTS_SCHEMA.empty_table()
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        if st.local:
            source = _read_parquet(st.path(f"{results_rel(run_id)}/*.parquet"))
        else:  # one run's rows are few: read them here rather than list and scan a dataset
            con.register(RESULTS_DATA, read_parts(st, parts))
            source = RESULTS_DATA
        # Rows written by this function's reader carry the path's run id, like the `results` view.
        table = con.sql(
            f"SELECT * REPLACE ($1 AS run_id) FROM ({_dedup_select(source)}) ORDER BY cell, case_id, sample, sample_id",
            params=[run_id],
        ).to_arrow_table()
    finally:
        con.close()
    return conform(table)


__all__ = ["connect", "refresh", "results_table"]
