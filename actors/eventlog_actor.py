"""The event-log actor: a thin Ray shell over :class:`troupe.runtime.eventlog.core.EventLogCore`.

One named actor per Ray namespace receives every producer's batches and owns the lake writes.
It is async with a high ``max_concurrency`` because viewers park long-poll ``read`` calls on it,
and ``num_cpus=0`` because it mostly waits (a CPU slot would be wasted on a 2-core machine).

Durability: the actor keeps a write-ahead log (:mod:`troupe.runtime.storage.wal`) in a directory of its node
named after the lake, and Ray restarts it when it dies (``max_restarts=-1``) and
sends it again the calls that were in flight (``max_task_retries=-1``). The new instance recovers
the segments in its constructor, so every batch an ``append`` acknowledged reaches the lake once;
only losing the node's disk loses them. When the whole cluster stopped, the next event log of the
lake on that node (another job's, under another name) writes what was left. The directory is ``$TROUPE_WAL_DIR/<hash>`` (default parent:
``<system temp dir>/troupe-wal``); set ``TROUPE_WAL_DIR`` where Ray's workers start (before ``ray
start``, or in ``runtime_env``'s ``env_vars``) to keep it on a disk that outlives reboots.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import ray
from ray.actor import ActorHandle

from troupe.actors.options import actor_class, event_log_options
from troupe.actors.ship import RayShip
from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.live import attach_live_export
from troupe.runtime.storage.location import open_storage
from troupe.runtime.storage.wal import WalBusyError

_log = logging.getLogger(__name__)

WAL_DIR_ENV: Final = "TROUPE_WAL_DIR"
"""Parent directory of the event logs' write-ahead logs on each node (default: ``<tmp>/troupe-wal``)."""
NAME_RELEASE_TIMEOUT_S: Final = 30.0
"""How long :func:`close_event_log` waits for Ray to release a closed log's name."""
WAL_SLOTS: Final = 8
"""Directories tried for one log: two live logs with the same lake and name on one node (two local
Ray clusters, each with job ``01000000``) cannot share one."""


def wal_dir_for(lake: str) -> Path:
    """The write-ahead log directory of an event log writing ``lake``, on this node. It depends on
    the lake alone: a restarted actor finds what it left, and so does the next event log of the
    lake after the whole cluster stopped (a new job's log has another name)."""
    parent = os.environ.get(WAL_DIR_ENV) or os.path.join(tempfile.gettempdir(), "troupe-wal")
    return Path(parent) / hashlib.sha1(lake.encode()).hexdigest()[:12]


def _slots(wal_dir: Path) -> list[Path]:
    return [wal_dir.with_name(f"{wal_dir.name}-{slot}") if slot else wal_dir for slot in range(WAL_SLOTS)]


def _core_with_wal(lake: str, wal_dir: Path, options: dict[str, Any]) -> EventLogCore:
    """A core on the first of ``wal_dir``, ``wal_dir-1``... that no live process holds; then the
    segments of the others that no live process holds either (event logs of this lake that died
    with their cluster) are written into the lake, and their directories removed."""
    for own in _slots(wal_dir):
        try:
            core = EventLogCore(lake, wal_dir=own, **options)
        except WalBusyError:
            continue
        for other in _slots(wal_dir):
            if other != own and other.exists():
                _adopt(lake, other)
        return core
    raise WalBusyError(f"the {WAL_SLOTS} write-ahead log directories {wal_dir}[-N] are all held by live event "
                       f"logs of this lake and name; close some, or give this one its own parent with "
                       f"${WAL_DIR_ENV}", directory=str(wal_dir))


def _adopt(lake: str, wal_dir: Path) -> None:
    """Write what a dead event log of this lake left in ``wal_dir`` into the lake (once)."""
    try:
        orphan = EventLogCore(lake, wal_dir=wal_dir)  # recovers the segments into the lake
    except WalBusyError:
        return  # a live log's
    except Exception:  # noqa: BLE001  (a damaged directory must not stop this log from starting)
        _log.exception("event log: could not recover the write-ahead log left in %s", wal_dir)
        return
    rows = orphan.stats().get("wal_rows_recovered", 0)
    orphan.close_sync()
    if rows:
        _log.warning("event log: wrote %d events a stopped event log of this lake left in %s", rows, wal_dir)


class EventLogActor:
    """Ray methods mirror :class:`EventLogCore`; a background task calls ``maybe_flush``.

    ``options`` go to the core; without ``wal_dir`` the write-ahead log goes to :func:`wal_dir_for`
    (``wal_dir=None`` turns it off, and a crash then loses what is not yet in Parquet). ``otel`` (an
    :class:`~troupe.runtime.otel.config.OtelConfig` as a dict) turns on the OpenTelemetry live export.
    """

    def __init__(self, lake: str, **options: Any) -> None:
        otel = options.pop("otel", None)
        if "wal_dir" in options:
            self._core = EventLogCore(lake, **options)
        else:
            self._core = _core_with_wal(lake, wal_dir_for(lake), options)
        # OpenTelemetry live export: the driver's configuration (``otel``), else this process's environment.
        attach_live_export(self._core, OtelConfig.model_validate(otel) if otel else None)
        self._tick_s = max(0.01, self._core.flush_interval_s / 2)
        self._ticker: asyncio.Task[None] | None = None

    def _ensure_ticker(self) -> None:
        # Started from a method rather than __init__ so it surely runs on the actor's event loop.
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self._core.maybe_flush()
            except Exception:
                _log.exception("periodic event log flush failed; rows stay buffered")

    async def append(self, columns: dict[str, list[Any]]) -> int:
        self._ensure_ticker()
        return await self._core.append(columns)

    async def flush(self) -> int:
        self._ensure_ticker()
        return await self._core.flush()

    async def finish_run(self, run_id: str) -> dict[str, int]:
        self._ensure_ticker()
        result = await self._core.finish_run(run_id)
        return {"files_before": result.files_before, "files_after": result.files_after, "rows": result.rows}

    async def open_sessions(self, session_ids: list[str]) -> None:
        """Sessions that are new: their stream positions start at 1 (:meth:`EventLogCore.open_sessions`)."""
        self._core.open_sessions(session_ids)

    async def subscribe(self, session_id: str) -> int:
        self._ensure_ticker()
        return self._core.subscribe(session_id)

    async def read(self, session_id: str, cursor: int, timeout: float = 1.0) -> tuple[list[dict[str, Any]], int]:
        self._ensure_ticker()
        return await self._core.read(session_id, cursor, timeout)

    async def unsubscribe(self, session_id: str) -> None:
        self._core.unsubscribe(session_id)

    async def stats(self) -> dict[str, Any]:
        return self._core.stats()

    async def identity(self) -> dict[str, Any]:
        """Who and where this instance is: ``name``, ``namespace``, ``pid`` (a restart changes it)."""
        ctx = ray.get_runtime_context()
        return {"name": ctx.get_actor_name(), "namespace": ctx.namespace, "pid": os.getpid()}

    async def close(self) -> int:
        """Write everything buffered and refuse further appends; returns the rows written now."""
        if self._ticker is not None:
            self._ticker.cancel()
        return await self._core.close()

    def __ray_shutdown__(self) -> None:
        """Ray calls this when the actor exits gracefully (its handles went out of scope)."""
        try:
            self._core.close_sync()
        except Exception:
            _log.exception("event log: final flush at shutdown failed")


def get_or_create_event_log(
    lake: str | Path,
    *,
    name: str = "eventlog",
    namespace: str = "troupe",
    **options: Any,
) -> ActorHandle:
    """The named event-log actor, created on first use (``options`` go to :class:`EventLogCore`:
    ``flush_rows``, ``flush_interval_s``, ``max_buffered_rows``, ``wal_dir``, ``wal_fsync``,
    ``tail_max``, ``tail_idle_s``).

    An actor that already exists under ``name`` is returned as is, whatever lake it writes to.
    Ray restarts it if it dies and re-sends the calls in flight; it recovers its write-ahead log
    (see the module docstring), so an acknowledged ``append`` is never lost with the process.

    ``lake`` is a local directory (made absolute here) or a ``pyarrow.fs`` URI, checked here (on
    object stores: that the bucket exists) so a bad one raises
    :class:`~troupe.runtime.storage.location.LakeLocationError` in the caller. The actor opens it again in its own
    process, so credentials must reach that process too: in the URI (``s3://KEY:SECRET@bucket/...``)
    or in the environment of Ray's workers (``AWS_ACCESS_KEY_ID``... exported where ``ray start`` /
    ``ray.init`` runs, ``runtime_env``'s ``env_vars``, or the node's instance role); if they do not,
    the actor's creation fails.
    """
    storage = open_storage(lake)
    storage.check()
    lake = storage.location
    return (
        actor_class(EventLogActor, event_log_options(name, namespace))
        .remote(lake, **options)
    )


async def close_event_log(handle: ActorHandle, *, timeout: float = NAME_RELEASE_TIMEOUT_S) -> int:
    """Write everything buffered, then end the actor for good and wait until its name is free again
    (a closed log refuses appends, and ``get_if_exists`` would otherwise hand it out). Returns rows
    written by the final flush. Call it before ``ray.shutdown()``, which kills actors without a flush.

    The actor is killed with ``no_restart=True`` once closed, not ended with ``__ray_terminate__``:
    Ray keeps the name of an actor that exited on its own taken for as long as a handle to it lives.
    """
    identity = await handle.identity.remote()
    rows = int(await handle.close.remote())
    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get_actor(identity["name"], namespace=identity["namespace"])
        except ValueError:
            return rows
        await asyncio.sleep(0.05)
    _log.warning("event log %s: its name was still taken %.0f s after it was killed", identity["name"], timeout)
    return rows


__all__ = [
    "WAL_DIR_ENV",
    "EventLogActor",
    "RayShip",
    "close_event_log",
    "get_or_create_event_log",
    "wal_dir_for",
]
