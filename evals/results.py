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

This module gathers the store's public names; they live in ``results_paths`` (layout, errors, which
runs exist), ``results_rows`` (the Parquet rows), ``results_views`` (DuckDB), ``results_manifests``
and ``results_baselines``.
"""

from __future__ import annotations

from troupe.evals.results_baselines import get_baseline, list_baselines, resolve_run, set_baseline
from troupe.evals.results_manifests import RunManifest, find_manifest, list_runs, read_manifest, write_manifest
from troupe.evals.results_paths import (
    BASELINES_FILE,
    COMPRESSION,
    EVALS_DIR,
    RESULTS_DIR,
    RUNS_DIR,
    EvalStoreError,
    Lake,
    RunStatus,
    UnknownBaselineError,
    UnknownRunError,
    known_run_ids,
    manifest_path,
    require_run,
    results_dir,
)
from troupe.evals.results_rows import (
    RESULTS_SCHEMA,
    RESULTS_SCHEMA_VERSION,
    compact,
    done_sample_ids,
    to_table,
    write_results,
)
from troupe.evals.results_views import connect, refresh, results_table

__all__ = [
    "BASELINES_FILE",
    "COMPRESSION",
    "EVALS_DIR",
    "RESULTS_DIR",
    "RESULTS_SCHEMA",
    "RESULTS_SCHEMA_VERSION",
    "RUNS_DIR",
    "EvalStoreError",
    "Lake",
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
