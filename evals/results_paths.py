"""Where a sweep's results live in a lake, and the store's errors: paths of result files, run
manifests and baselines; which runs exist.

Run ids are percent-encoded in paths (DuckDB decodes hive values), so any string is safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, unquote

from troupe.runtime.errors import ConfigError
from troupe.runtime.storage.location import Ref, Storage, open_storage, redact

EVALS_DIR: Final = "evals"


RESULTS_DIR: Final = "evals/results"


RUNS_DIR: Final = "evals/runs"


BASELINES_FILE: Final = "evals/baselines.json"


COMPRESSION: Final = "zstd"


RunStatus = Literal["running", "finished", "interrupted"]


Lake = str | Path | Storage
"""A lake: a local directory, a ``pyarrow.fs`` URI, or an opened :class:`~troupe.runtime.storage.location.Storage`."""


class EvalStoreError(ConfigError):
    """Bad input to the eval store (a malformed manifest, an empty name, ...)."""


class UnknownRunError(EvalStoreError):
    """No eval run with that id (or baseline name) in this lake; the message lists the known ones."""


class UnknownBaselineError(EvalStoreError):
    """No baseline with that name; the message lists the known names."""


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise EvalStoreError(f"a run id must be a non-empty string, not {run_id!r}")
    return run_id


def results_rel(run_id: str) -> str:
    return f"{RESULTS_DIR}/run_id={quote(check_run_id(run_id), safe='')}"


def manifest_rel(run_id: str) -> str:
    return f"{RUNS_DIR}/{quote(check_run_id(run_id), safe='')}.json"


def results_dir(lake: Lake, run_id: str) -> Ref:
    """The directory holding one run's result files."""
    return open_storage(lake).ref(results_rel(run_id))


def manifest_path(lake: Lake, run_id: str) -> Ref:
    return open_storage(lake).ref(manifest_rel(run_id))


def part_files(st: Storage, run_id: str) -> list[str]:
    return st.files(results_rel(run_id), suffix=".parquet")


def shown(st: Storage, rel: str) -> str:
    """A file's name for messages (its URI's secret masked)."""
    return redact(str(st.ref(rel)))


def utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def known_run_ids(lake: Lake) -> list[str]:
    """Ids of every run with a manifest or result rows, sorted."""
    st = open_storage(lake)
    ids = {unquote(rel.rsplit("/", 1)[-1].removesuffix(".json")) for rel in st.files(RUNS_DIR, suffix=".json")}
    ids.update(unquote(d.removeprefix("run_id=")) for d in st.dirs(RESULTS_DIR) if d.startswith("run_id="))
    return sorted(ids)


def listing(names: Iterable[str], what: str, limit: int = 20) -> str:
    names = list(names)
    if not names:
        return f"there are no {what} in this lake"
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"known {what}: {shown}{more}"


def unknown_run(lake: Lake, run_id: str) -> UnknownRunError:
    st = open_storage(lake)
    return UnknownRunError(
        f"no eval run {run_id!r} in {st}; {listing(known_run_ids(st), 'eval runs')}", run_id=run_id
    )


def has_run(st: Storage, run_id: str) -> bool:
    return st.is_file(manifest_rel(run_id)) or bool(part_files(st, run_id))


def require_run(lake: Lake, run_id: str) -> str:
    """``run_id`` if the run has a manifest or results; else :class:`UnknownRunError` listing the known runs."""
    st = open_storage(lake)
    if has_run(st, run_id):
        return run_id
    raise unknown_run(st, run_id)


__all__ = [
    "BASELINES_FILE",
    "COMPRESSION",
    "EVALS_DIR",
    "RESULTS_DIR",
    "RUNS_DIR",
    "EvalStoreError",
    "Lake",
    "RunStatus",
    "UnknownBaselineError",
    "UnknownRunError",
    "check_run_id",
    "has_run",
    "known_run_ids",
    "listing",
    "manifest_path",
    "manifest_rel",
    "part_files",
    "require_run",
    "results_dir",
    "results_rel",
    "shown",
    "unknown_run",
    "utc",
]
