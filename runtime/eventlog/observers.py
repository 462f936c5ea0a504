"""Observers of the event log: code in the log's process that sees every batch as it is accepted
(the OpenTelemetry live exporter, :mod:`troupe.runtime.otel.live`), before it is written.

An observer must be quick (``observe`` runs inside ``append``, on the log's event loop) and must
not raise; what it does with the rows (export them, count them) it does in its own tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class EventObserver(Protocol):
    def observe(self, columns: Mapping[str, Sequence[Any]], n: int) -> None:
        """A batch of ``n`` rows the log accepted (column-major, ``ts`` as the producer sent it;
        ephemeral rows such as ``llm.token`` included)."""
        ...

    async def aclose(self) -> None:
        """The log is closing: finish what is buffered."""
        ...


__all__ = ["EventObserver"]
