"""Shipping event batches to the event-log actor (kept apart so producers don't load the lake code)."""

from __future__ import annotations

from typing import Any

from ray.actor import ActorHandle


class RayShip:
    """The ``ship`` callable of an :class:`troupe.runtime.eventlog.buffer.EventBuffer` that feeds the actor."""

    def __init__(self, handle: ActorHandle) -> None:
        self._handle = handle

    async def __call__(self, columns: dict[str, list[Any]]) -> int:
        return int(await self._handle.append.remote(columns))


__all__ = ["RayShip"]
