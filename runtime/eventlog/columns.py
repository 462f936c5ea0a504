"""Column-major event batches as the log receives them: checked, filtered, turned into Arrow rows.

Producers ship ``{column: [values]}`` (:func:`~troupe.runtime.events.schema.events_to_columns`, or
``EventBuffer``'s cheaper wire form with ``ts`` as integer microseconds since the epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from troupe.runtime.errors import TroupeError
from troupe.runtime.events import ARROW_SCHEMA, EVENT_COLUMNS

Columns = dict[str, list[Any]]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidEventBatchError(TroupeError):
    """A batch that cannot become rows of :data:`ARROW_SCHEMA` (missing column, wrong type)."""


def check_lengths(columns: Mapping[str, Sequence[Any]]) -> int:
    """The batch's row count; :class:`InvalidEventBatchError` unless every column is there, all of one length."""
    n = len(columns.get("type", ()))
    if any(len(columns.get(name, ())) != n for name in EVENT_COLUMNS):
        raise InvalidEventBatchError("bad event batch: every column of the schema, all of one length")
    return n


def take(columns: Mapping[str, Sequence[Any]], keep: list[int]) -> Columns:
    """The rows ``keep`` of a batch."""
    return {name: [columns[name][i] for i in keep] for name in EVENT_COLUMNS}


def row(columns: Mapping[str, Sequence[Any]], i: int) -> dict[str, Any]:
    """Row ``i`` of a batch as a dict, ``ts`` a datetime whichever form the producer sent."""
    out = {name: columns[name][i] for name in EVENT_COLUMNS}
    if isinstance(out["ts"], int):  # the producers' wire form (troupe.runtime.eventlog.buffer.to_columns)
        out["ts"] = _EPOCH + timedelta(microseconds=out["ts"])
    return out


def to_arrow(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """A batch as an Arrow table of :data:`ARROW_SCHEMA`, or :class:`InvalidEventBatchError`."""
    try:
        table = pa.Table.from_pydict({name: columns[name] for name in EVENT_COLUMNS}, schema=ARROW_SCHEMA)
    except (KeyError, pa.ArrowException, TypeError, ValueError) as e:
        raise InvalidEventBatchError(f"bad event batch: {e!r}") from None
    if table["ts"].null_count or table["run_id"].null_count:
        raise InvalidEventBatchError("bad event batch: every event needs a ts and a run_id")
    return table


__all__ = ["Columns", "InvalidEventBatchError", "check_lengths", "row", "take", "to_arrow"]
