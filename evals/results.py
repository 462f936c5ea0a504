"""Where a sweep's results live: Parquet rows, run manifests and named baselines, beside the event lake.

Layout under the lake root::

    evals/results/run_id=<run_id>/part-<uuid>.parquet   one SampleResult per row (append-only)
    evals/runs/<run_id>.json                             the run's RunManifest
    evals/baselines.json                                 {"<name>": "<run_id>", ...}

The lake is a local directory or any ``pyarrow.fs`` URI (:mod:`troupe.runtime.storage.location`); functions that
name a file return a ``Path`` on local disk and a URI elsewhere. Run ids are percent-encoded in paths
(DuckDB decodes hive values), so any string is safe. Result files and manifests appear atomically
(see :mod:`troupe.runtime.storage.location`); every :func:`write_results` adds files and never rewrites one;
:func:`compact` merges a run's parts into one file when the sweep ends (fewer files scan faster).

A sample id is stable for (cell, case, sample index), so a resumed sweep skips the ids of
:func:`done_sample_ids`. Should a sample be written twice (a retried error), readers keep one row per
``(run_id, sample_id)``: a row that ran beats an ``error`` row, then the latest ``finished_at`` wins.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import CompactionResult
from troupe.runtime.eventlog.lake import connect as connect_events
from troupe.runtime.storage.location import LakeLocationError, Ref, Storage, open_storage, redact
from troupe.evals.models import Case, Gates, SampleResult, Suite

EVALS_DIR: Final = "evals"
RESULTS_DIR: Final = "evals/results"
RUNS_DIR: Final = "evals/runs"
BASELINES_FILE: Final = "evals/baselines.json"
RESULTS_SCHEMA_VERSION: Final = 1
COMPRESSION: Final = "zstd"

RunStatus = Literal["running", "finished", "interrupted"]
Lake = str | Path | Storage
"""A lake: a local directory, a ``pyarrow.fs`` URI, or an opened :class:`~troupe.runtime.storage.location.Storage`."""


# --- errors -----------------------------------------------------------------------------------
class EvalStoreError(ConfigError):
    """Bad input to the eval store (a malformed manifest, an empty name, ...)."""


class UnknownRunError(EvalStoreError):
    """No eval run with that id (or baseline name) in this lake; the message lists the known ones."""


class UnknownBaselineError(EvalStoreError):
    """No baseline with that name; the message lists the known names."""


# --- the Arrow schema, derived from SampleResult -------------------------------------------------
_SCALARS: Final[dict[Any, pa.DataType]] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """The Arrow type of a model field's annotation and whether it may be null."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no Arrow type for {annotation!r}")
        return _arrow_type(args[0])[0], True
    if origin is list:
        (item,) = typing.get_args(annotation)
        return pa.list_(_arrow_type(item)[0]), False
    if annotation in _SCALARS:
        return _SCALARS[annotation], False
    raise TypeError(f"no Arrow type for {annotation!r}")


def _results_schema() -> pa.Schema:
    fields = []
    for name, info in SampleResult.model_fields.items():
        dtype, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, dtype, nullable=nullable))
    meta = {"troupe.kind": "eval-results", "troupe.schema_version": str(RESULTS_SCHEMA_VERSION)}
    return pa.schema(fields, metadata=meta)


RESULTS_SCHEMA: Final[pa.Schema] = _results_schema()
"""One column per :class:`~troupe.evals.models.SampleResult` field, in model order (``run_id`` is also the
hive partition key)."""

_DUCK_TYPES: Final[dict[pa.DataType, str]] = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.list_(pa.string()): "VARCHAR[]",
}


# --- paths ------------------------------------------------------------------------------------
def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise EvalStoreError(f"a run id must be a non-empty string, not {run_id!r}")
    return run_id


def _results_rel(run_id: str) -> str:
    return f"{RESULTS_DIR}/run_id={quote(_check_run_id(run_id), safe='')}"


def _manifest_rel(run_id: str) -> str:
    return f"{RUNS_DIR}/{quote(_check_run_id(run_id), safe='')}.json"


def results_dir(lake: Lake, run_id: str) -> Ref:
    """The directory holding one run's result files."""
    return open_storage(lake).ref(_results_rel(run_id))


def manifest_path(lake: Lake, run_id: str) -> Ref:
    return open_storage(lake).ref(_manifest_rel(run_id))


def _parts(st: Storage, run_id: str) -> list[str]:
    return st.files(_results_rel(run_id), suffix=".parquet")


def _shown(st: Storage, rel: str) -> str:
    """A file's name for messages (its URI's secret masked)."""
    return redact(str(st.ref(rel)))


def _write_parquet(st: Storage, table: pa.Table, run_id: str) -> Ref:
    return st.ref(st.write_parquet(_results_rel(run_id), table, compression=COMPRESSION))


# --- results ----------------------------------------------------------------------------------
def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


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
            cols[name].append(_utc(value) if isinstance(value, datetime) else value)
    return pa.Table.from_pydict(cols, schema=RESULTS_SCHEMA)


def _conform(table: pa.Table) -> pa.Table:
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


def _read_parts(st: Storage, parts: list[str]) -> pa.Table:
    return pa.concat_tables([_conform(st.read_table(p)) for p in parts])


def compact(lake: Lake, run_id: str) -> CompactionResult:
    """Merge a run's result files into one, sorted by cell, case and sample (every row kept).

    The new file is in place (renamed, or uploaded to an object store) before the old ones are
    removed, so no row is ever missing; files written concurrently (not yet listed) are left alone.
    """
    st = open_storage(lake)
    parts = _parts(st, run_id)
    if len(parts) <= 1:
        return CompactionResult(files_before=len(parts), files_after=len(parts), rows=0)
    merged = _read_parts(st, parts)
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
    parts = _parts(st, run_id)
    if not parts:
        return set()
    table = pa.concat_tables([st.read_table(p, columns=["sample_id", "status"]) for p in parts])
    ids = table["sample_id"].to_pylist()
    if not retry_errors:
        return set(ids)
    return {sid for sid, status in zip(ids, table["status"].to_pylist(), strict=True) if status != "error"}


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


_RESULTS_DATA: Final = "_troupe_results_data"
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
    con.register(_RESULTS_DATA, st.dataset(files, RESULTS_DIR, schema=RESULTS_SCHEMA, partitioning=_RUN_PARTITIONING))
    return _RESULTS_DATA


def _empty_select() -> str:
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in RESULTS_SCHEMA)
    return f"SELECT {cols} WHERE false"


def refresh(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """(Re)create the ``results`` and ``results_raw`` views (and ``events``): on local disk needed
    only when a connection opened before the first result file was written should start seeing
    results; off this machine the views hold the files listed here (call again to see newer ones)."""
    from troupe.runtime.eventlog.lake import refresh as refresh_events

    st = open_storage(lake)
    refresh_events(con, st)
    source = _results_source(con, st)
    if source is not None:
        raw = f"SELECT * FROM {source}"
        dedup = _dedup_select(source)
    else:
        raw = dedup = _empty_select()
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
    parts = _parts(st, run_id)
    if not parts:
        if not st.is_file(_manifest_rel(run_id)):
            raise _unknown_run(st, run_id)
        return RESULTS_SCHEMA.empty_table()
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        if st.local:
            source = _read_parquet(st.path(f"{_results_rel(run_id)}/*.parquet"))
        else:  # one run's rows are few: read them here rather than list and scan a dataset
            con.register(_RESULTS_DATA, _read_parts(st, parts))
            source = _RESULTS_DATA
        # Rows written by this function's reader carry the path's run id, like the `results` view.
        table = con.sql(
            f"SELECT * REPLACE ($1 AS run_id) FROM ({_dedup_select(source)}) ORDER BY cell, case_id, sample, sample_id",
            params=[run_id],
        ).to_arrow_table()
    finally:
        con.close()
    return _conform(table)


# --- run manifests ------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


class RunManifest(BaseModel):
    """What a sweep was asked to do and how far it got: ``<lake>/evals/runs/<run_id>.json``."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    suite: str
    """The suite's name."""
    suite_path: str | None = None
    """The suite file the sweep ran (as given)."""
    description: str = ""
    license: str | None = None
    """The suite's license text, shown in reports."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """The grid swept: suite grid plus ``--grid``; each combination is one cell."""
    models: list[str] = Field(default_factory=list)
    samples: int = Field(default=1, ge=1)
    concurrency: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    status: RunStatus = "running"
    totals: dict[str, Any] = Field(default_factory=dict)
    """Counters the sweep keeps up to date, e.g. ``{"planned": 120, "done": 80, "passed": 61, "failed": 3}``."""
    gates: Gates = Field(default_factory=Gates)
    """The suite's gates."""
    required_cases: list[str] = Field(default_factory=list)
    """Case ids that must pass in every cell (cases marked ``required`` and ``gates.required_cases``)."""

    @classmethod
    def for_suite(
        cls,
        suite: Suite,
        *,
        run_id: str,
        cases: Iterable[Case] = (),
        suite_path: str | Path | None = None,
        grid: Mapping[str, list[Any]] | None = None,
        models: Iterable[str] = (),
        samples: int | None = None,
        concurrency: int = 1,
    ) -> RunManifest:
        """A fresh ``running`` manifest for a sweep of ``suite`` (its gates, license and required cases)."""
        required = [c.id for c in cases if c.required]
        required += [c for c in suite.gates.required_cases if c not in required]
        return cls(
            run_id=run_id, suite=suite.name, suite_path=None if suite_path is None else str(suite_path),
            description=suite.description, license=suite.license,
            grid=dict(suite.grid if grid is None else grid), models=list(models),
            samples=suite.samples if samples is None else samples, concurrency=concurrency,
            gates=suite.gates, required_cases=required,
        )


def write_manifest(lake: Lake, manifest: RunManifest, *, touch: bool = True) -> RunManifest:
    """Write (atomically replace) a run's manifest; stamps ``updated_at`` unless ``touch=False``.
    Returns the manifest as written."""
    _check_run_id(manifest.run_id)
    if touch:
        manifest = manifest.model_copy(update={"updated_at": _now()})
    open_storage(lake).write_bytes(_manifest_rel(manifest.run_id), manifest.model_dump_json(indent=2).encode())
    return manifest


def _load_manifest(st: Storage, rel: str, data: bytes | None = None) -> RunManifest:
    try:
        return RunManifest.model_validate_json(st.read_bytes(rel) if data is None else data)
    except (ValidationError, ValueError) as e:
        raise EvalStoreError(f"run manifest {_shown(st, rel)} is malformed (fix or delete it): {e}") from None


def find_manifest(lake: Lake, run_id: str) -> RunManifest | None:
    """A run's manifest, or ``None`` when it has none."""
    st = open_storage(lake)
    rel = _manifest_rel(run_id)
    try:
        data = st.read_bytes(rel)
    except FileNotFoundError:
        return None
    return _load_manifest(st, rel, data)


def read_manifest(lake: Lake, run_id: str) -> RunManifest:
    """A run's manifest; :class:`UnknownRunError` (listing the known runs) when it has none."""
    manifest = find_manifest(lake, run_id)
    if manifest is None:
        raise _unknown_run(lake, run_id)
    return manifest


def list_runs(lake: Lake) -> list[RunManifest]:
    """Every run with a manifest, newest first (by ``created_at``)."""
    st = open_storage(lake)
    manifests = [_load_manifest(st, rel) for rel in st.files(RUNS_DIR, suffix=".json")]
    return sorted(manifests, key=lambda m: (_utc(m.created_at), m.run_id), reverse=True)


def known_run_ids(lake: Lake) -> list[str]:
    """Ids of every run with a manifest or result rows, sorted."""
    st = open_storage(lake)
    ids = {unquote(rel.rsplit("/", 1)[-1].removesuffix(".json")) for rel in st.files(RUNS_DIR, suffix=".json")}
    ids.update(unquote(d.removeprefix("run_id=")) for d in st.dirs(RESULTS_DIR) if d.startswith("run_id="))
    return sorted(ids)


def _listing(names: Iterable[str], what: str, limit: int = 20) -> str:
    names = list(names)
    if not names:
        return f"there are no {what} in this lake"
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"known {what}: {shown}{more}"


def _unknown_run(lake: Lake, run_id: str) -> UnknownRunError:
    st = open_storage(lake)
    return UnknownRunError(
        f"no eval run {run_id!r} in {st}; {_listing(known_run_ids(st), 'eval runs')}", run_id=run_id
    )


def _has_run(st: Storage, run_id: str) -> bool:
    return st.is_file(_manifest_rel(run_id)) or bool(_parts(st, run_id))


def require_run(lake: Lake, run_id: str) -> str:
    """``run_id`` if the run has a manifest or results; else :class:`UnknownRunError` listing the known runs."""
    st = open_storage(lake)
    if _has_run(st, run_id):
        return run_id
    raise _unknown_run(st, run_id)


# --- baselines --------------------------------------------------------------------------------
def list_baselines(lake: Lake) -> dict[str, str]:
    """Every baseline name and its run id."""
    st = open_storage(lake)
    try:
        raw = st.read_bytes(BASELINES_FILE)
    except FileNotFoundError:
        return {}
    path = _shown(st, BASELINES_FILE)
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise EvalStoreError(f"{path} is not valid JSON (fix or delete it): {e}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise EvalStoreError(f"{path} must map baseline names to run ids (strings)")
    return dict(data)


def set_baseline(lake: Lake, name: str, run_id: str) -> None:
    """Point baseline ``name`` at ``run_id`` (which must exist); replaces an earlier one of that name."""
    if not isinstance(name, str) or not name.strip():
        raise EvalStoreError(f"a baseline name must be a non-empty string, not {name!r}")
    st = open_storage(lake)
    require_run(st, run_id)
    baselines = list_baselines(st)
    baselines[name] = run_id
    data = json.dumps(dict(sorted(baselines.items())), indent=2).encode()
    st.write_bytes(BASELINES_FILE, data)


def get_baseline(lake: Lake, name: str) -> str:
    """The run id of baseline ``name``; :class:`UnknownBaselineError` (listing the names) when absent."""
    baselines = list_baselines(lake)
    if name not in baselines:
        raise UnknownBaselineError(
            f"no baseline {name!r} in {open_storage(lake)}; {_listing(sorted(baselines), 'baselines')} "
            "(set one with set_baseline / `troupe eval baseline`)",
            name=name,
        )
    return baselines[name]


def resolve_run(lake: Lake, ref: str) -> str:
    """A run id from what a user typed: a run id, ``latest`` (the newest manifest) or a baseline name."""
    st = open_storage(lake)
    if _has_run(st, ref):
        return ref
    if ref == "latest":
        runs = list_runs(st)
        if not runs:
            raise UnknownRunError(f"no eval runs in {st}, so there is no 'latest'")
        return runs[0].run_id
    baselines = list_baselines(st)
    if ref in baselines:
        return baselines[ref]
    raise UnknownRunError(
        f"{ref!r} is neither an eval run nor a baseline in {st}; "
        f"{_listing(known_run_ids(st), 'eval runs')}; {_listing(sorted(baselines), 'baselines')}",
        run_id=ref,
    )


__all__ = [
    "RESULTS_SCHEMA",
    "EvalStoreError",
    "RunManifest",
    "RunStatus",
    "UnknownBaselineError",
    "UnknownRunError",
    "compact",
    "connect",
    "done_sample_ids",
    "find_manifest",
    "get_baseline",
    "known_run_ids",
    "list_baselines",
    "list_runs",
    "manifest_path",
    "read_manifest",
    "refresh",
    "require_run",
    "resolve_run",
    "results_dir",
    "results_table",
    "set_baseline",
    "to_table",
    "write_manifest",
    "write_results",
]
