"""Named baselines (``<lake>/evals/baselines.json``: name -> run id), and resolving what a user typed
(a run id, ``latest`` or a baseline name) to a run id."""

from __future__ import annotations

import json

from troupe.evals.results_manifests import list_runs
from troupe.evals.results_paths import (
    BASELINES_FILE,
    EvalStoreError,
    Lake,
    UnknownBaselineError,
    UnknownRunError,
    has_run,
    known_run_ids,
    listing,
    require_run,
    shown,
)
from troupe.runtime.storage.location import open_storage


def list_baselines(lake: Lake) -> dict[str, str]:
    """Every baseline name and its run id."""
    st = open_storage(lake)
    try:
        raw = st.read_bytes(BASELINES_FILE)
    except FileNotFoundError:
        return {}
    path = shown(st, BASELINES_FILE)
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
            f"no baseline {name!r} in {open_storage(lake)}; {listing(sorted(baselines), 'baselines')} "
            "(set one with set_baseline / `troupe eval baseline`)",
            name=name,
        )
    return baselines[name]


def resolve_run(lake: Lake, ref: str) -> str:
    """A run id from what a user typed: a run id, ``latest`` (the newest manifest) or a baseline name."""
    st = open_storage(lake)
    if has_run(st, ref):
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
        f"{listing(known_run_ids(st), 'eval runs')}; {listing(sorted(baselines), 'baselines')}",
        run_id=ref,
    )


__all__ = ["get_baseline", "list_baselines", "resolve_run", "set_baseline"]
