"""The event lake's columns, derived from :class:`~troupe.runtime.events.envelope.Event`: their
names, the Parquet (Arrow) schema and the column-major form of a batch.

``ARROW_SCHEMA`` is built on first use (module ``__getattr__``): processes that only emit events
(every host actor) need not load pyarrow. Every column is nullable, as in every lake written so far.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from troupe.runtime.events.arrow import arrow_schema
from troupe.runtime.events.envelope import Event

EVENT_COLUMNS: Final[tuple[str, ...]] = tuple(Event.model_fields)
"""The lake's columns in file order (``date`` and ``run_id`` are also hive partition keys)."""


@functools.cache
def event_arrow_schema() -> Any:
    """Parquet columns of the lake: one per :class:`Event` field, all nullable."""
    return arrow_schema(Event, all_nullable=True)


def __getattr__(name: str) -> Any:
    if name == "ARROW_SCHEMA":
        return event_arrow_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def events_to_columns(events: list[Event]) -> dict[str, list[Any]]:
    """Column-major form of a batch: cheap to ship across Ray and to turn into Arrow."""
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for ev in events:
        d = ev.__dict__
        for name in EVENT_COLUMNS:
            cols[name].append(d[name])
    return cols


__all__ = ["EVENT_COLUMNS", "event_arrow_schema", "events_to_columns"]  # and ARROW_SCHEMA, built on first use
