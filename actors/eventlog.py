"""The event-log actor: a thin Ray shell over :class:`runtime.eventlog.EventLogCore`.

One named actor per Ray namespace receives every producer's batches and owns the lake writes.
It is async with a high ``max_concurrency`` because viewers park long-poll ``read`` calls on it,
and ``num_cpus=0`` because it mostly waits (a CPU slot would be wasted on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Final

import ray
from ray.actor import ActorHandle

from actors.ship import RayShip
from runtime.eventlog import EventLogCore
from runtime.storage import open_storage

_log = logging.getLogger(__name__)

MAX_CONCURRENCY: Final = 1000
"""Concurrent calls the actor serves: long-poll readers each hold one while they wait."""


class EventLogActor:
    """Ray methods mirror :class:`EventLogCore`; a background task calls ``maybe_flush``."""

    def __init__(self, lake: str, **options: Any) -> None:
        self._core = EventLogCore(lake, **options)
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
    ``flush_rows``, ``flush_interval_s``, ``tail_max``, ``tail_idle_s``).

    An actor that already exists under ``name`` is returned as is, whatever lake it writes to.

    ``lake`` is a local directory (made absolute here) or a ``pyarrow.fs`` URI, checked here (on
    object stores: that the bucket exists) so a bad one raises
    :class:`~runtime.storage.LakeLocationError` in the caller. The actor opens it again in its own
    process, so credentials must reach that process too: in the URI (``s3://KEY:SECRET@bucket/...``)
    or in the environment of Ray's workers (``AWS_ACCESS_KEY_ID``... exported where ``ray start`` /
    ``ray.init`` runs, ``runtime_env``'s ``env_vars``, or the node's instance role); if they do not,
    the actor's creation fails.
    """
    storage = open_storage(lake)
    storage.check()
    lake = storage.location
    return (
        ray.remote(EventLogActor)
        .options(
            name=name,
            namespace=namespace,
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=MAX_CONCURRENCY,
            max_restarts=0,
        )
        .remote(lake, **options)
    )


async def close_event_log(handle: ActorHandle) -> int:
    """Write everything buffered, then end the actor gracefully so its name is free again
    (a closed log refuses appends; ``get_if_exists`` would otherwise hand it out). Returns rows
    written by the final flush. Call it before ``ray.shutdown()``, which kills actors without a flush."""
    rows = int(await handle.close.remote())
    handle.__ray_terminate__.remote()
    try:
        await handle.stats.remote()  # queued after the terminate: returns once the actor is gone
    except ray.exceptions.RayActorError:
        pass
    return rows


__all__ = ["MAX_CONCURRENCY", "EventLogActor", "RayShip", "close_event_log", "get_or_create_event_log"]
