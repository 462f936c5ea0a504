"""Run manifests: what a sweep was asked to do and how far it got, ``<lake>/evals/runs/<run_id>.json``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from troupe.evals.models import Case, Gates, Suite
from troupe.evals.results_paths import (
    RUNS_DIR,
    EvalStoreError,
    Lake,
    RunStatus,
    check_run_id,
    manifest_rel,
    shown,
    unknown_run,
    utc,
)
from troupe.runtime.storage.location import Storage, open_storage


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
    from_run: str | None = None
    """The recorded sweep this one forks or replays (``troupe eval run --from-run``)."""
    fork_at: str | None = None
    """The step its samples were forked at (``after-tool-result:1``...), or ``replay``."""
    owner: str | None = None
    """The user who started the sweep over ``troupe serve`` (its samples' sessions are theirs); ``None``: the CLI."""
    not_forkable: list[str] = Field(default_factory=list)
    """Sample ids whose parent never reached ``fork_at``: they ran from the start (``fork_point`` ``turn:1``)."""

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
    check_run_id(manifest.run_id)
    if touch:
        manifest = manifest.model_copy(update={"updated_at": _now()})
    open_storage(lake).write_bytes(manifest_rel(manifest.run_id), manifest.model_dump_json(indent=2).encode())
    return manifest


def _load_manifest(st: Storage, rel: str, data: bytes | None = None) -> RunManifest:
    try:
        return RunManifest.model_validate_json(st.read_bytes(rel) if data is None else data)
    except (ValidationError, ValueError) as e:
        raise EvalStoreError(f"run manifest {shown(st, rel)} is malformed (fix or delete it): {e}") from None


def find_manifest(lake: Lake, run_id: str) -> RunManifest | None:
    """A run's manifest, or ``None`` when it has none."""
    st = open_storage(lake)
    rel = manifest_rel(run_id)
    try:
        data = st.read_bytes(rel)
    except FileNotFoundError:
        return None
    return _load_manifest(st, rel, data)


def read_manifest(lake: Lake, run_id: str) -> RunManifest:
    """A run's manifest; :class:`UnknownRunError` (listing the known runs) when it has none."""
    manifest = find_manifest(lake, run_id)
    if manifest is None:
        raise unknown_run(lake, run_id)
    return manifest


def list_runs(lake: Lake) -> list[RunManifest]:
    """Every run with a manifest, newest first (by ``created_at``)."""
    st = open_storage(lake)
    manifests = [_load_manifest(st, rel) for rel in st.files(RUNS_DIR, suffix=".json")]
    return sorted(manifests, key=lambda m: (utc(m.created_at), m.run_id), reverse=True)


__all__ = ["RunManifest", "find_manifest", "list_runs", "read_manifest", "write_manifest"]
