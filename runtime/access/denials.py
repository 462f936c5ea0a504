"""Recording refusals: each :class:`AccessDenied` becomes an ``access.denied`` event for the lake.

The events go to a ``write(events)`` callable the interface supplies (the server's lake writer),
in batches: a refusal is written at most ``interval_s`` after it happened, and a burst of refusals
(a client hammering with a bad key) becomes one Parquet file per interval, not one per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Final

from troupe.runtime.access.guard import AccessDenied
from troupe.runtime.events import Event, make_event
from troupe.runtime.events.access import ACCESS_RUN_ID, ACCESS_SESSION_ID, AccessDeniedPayload

log = logging.getLogger("troupe.access")

MAX_PENDING: Final = 10_000
"""Refusals kept while the writer is failing; older ones are dropped (and logged) beyond this."""


def denial_event(denied: AccessDenied, *, method: str, path: str, client: str | None = None,
                 interface: str = "http", session_id: str | None = None) -> Event:
    """The ``access.denied`` event of a refusal (see :class:`AccessDeniedPayload` for its run and session)."""
    principal = denied.principal
    payload = AccessDeniedPayload(
        status_code=denied.status_code, error=denied.error, reason=denied.reason, method=method, path=path,
        user=principal.user if principal else None, role=principal.role if principal else None,
        key_id=denied.key_id, client=client, session=session_id or denied.session_id)
    return make_event(payload, run_id=ACCESS_RUN_ID, session_id=ACCESS_SESSION_ID, agent=interface, status="denied")


class DenialLog:
    """Collects ``access.denied`` events and writes them in batches (``interval_s`` 0: at once)."""

    def __init__(self, write: Callable[[Sequence[Event]], object], *, interval_s: float = 1.0) -> None:
        self._write = write
        self.interval_s = interval_s
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def record(self, event: Event) -> None:
        log.info("access denied: %s", event.payload)
        with self._lock:
            self._pending.append(event)
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]
            at_once = self.interval_s <= 0
            if not at_once and self._timer is None:
                self._timer = threading.Timer(self.interval_s, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if at_once:
            self.flush()

    def flush(self) -> int:
        """Write what is pending now; the number of events written."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._timer = None
        if not batch:
            return 0
        try:
            self._write(batch)
        except Exception:  # noqa: BLE001 - recording must never turn a refusal into a server error
            log.exception("could not record %d access.denied event(s); keeping them for the next write", len(batch))
            with self._lock:
                self._pending[:0] = batch
            return 0
        return len(batch)

    def close(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()


__all__ = ["DenialLog", "denial_event"]
