"""Live export: spans sent as sessions finish, from the process that writes the lake.

:class:`LiveExporter` observes the event log (:class:`~troupe.runtime.eventlog.observers.EventObserver`):
it keeps each session's rows, and a moment (``grace_s``) after the session's ``session.finished``
(agents' last state changes come just after it) maps them to spans and sends them over OTLP in a
worker thread, so the log's event loop never waits on the collector. Memory is bounded: at most
``max_sessions`` sessions buffered (the oldest is exported early, marked ``troupe.partial``) and
``max_events`` rows each (later rows of that session are counted and dropped); sessions still open
when the log closes are exported as they are. Export failures are logged and counted, never raised:
the lake stays the record, and ``troupe events export-otel`` sends a session again later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from troupe.runtime.eventlog.columns import row
from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.events import EPHEMERAL_TYPES, Event
from troupe.runtime.otel.attributes import ContentPolicy
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.export import OtelUnavailableError, export_spans, make_exporter
from troupe.runtime.otel.mapper import session_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

DEFAULT_GRACE_S: Final = 0.5
DEFAULT_MAX_SESSIONS: Final = 1_000
DEFAULT_MAX_EVENTS: Final = 50_000
DEFAULT_MAX_QUEUED: Final = 100
"""Sessions mapped and waiting for the exporter thread; past it (a collector that is down) a
finished session is dropped from the live export (it is still in the lake)."""
_REMEMBER_DONE: Final = 10_000


@dataclass
class LiveExportStats:
    sessions_exported: int = 0
    spans_exported: int = 0
    spans_failed: int = 0
    sessions_dropped: int = 0
    rows_dropped: int = 0
    rows_late: int = 0
    """Rows of a session that arrived after it was exported."""


@dataclass
class _Buffer:
    rows: list[dict[str, Any]] = field(default_factory=list)
    finishing: bool = False


class LiveExporter:
    """Buffers each session's rows and exports its spans when it finishes (see the module doc)."""

    def __init__(self, config: OtelConfig, *, grace_s: float = DEFAULT_GRACE_S,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, max_events: int = DEFAULT_MAX_EVENTS,
                 max_queued: int = DEFAULT_MAX_QUEUED, exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.grace_s = grace_s
        self.max_sessions = max_sessions
        self.max_events = max_events
        self.max_queued = max_queued
        self.stats = LiveExportStats()
        self._policy = ContentPolicy(capture=config.capture_content)
        # Made here, so a missing SDK fails at attach time, not once per session.
        self._exporter = exporter if exporter is not None else make_exporter(config)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="troupe-otel")
        self._buffers: OrderedDict[str, _Buffer] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._closed = False

    # --- EventObserver -------------------------------------------------------------------
    def observe(self, columns: Mapping[str, Sequence[Any]], n: int) -> None:
        if self._closed:
            return
        types, sessions = columns["type"], columns["session_id"]
        for i in range(n):
            event_type = types[i]
            if event_type in EPHEMERAL_TYPES:
                continue
            sid = sessions[i]
            if sid in self._done:
                self.stats.rows_late += 1
                continue
            buffer = self._buffers.get(sid)
            if buffer is None:
                if len(self._buffers) >= self.max_sessions:
                    self._flush(next(iter(self._buffers)))  # the oldest goes early, as it is
                buffer = self._buffers[sid] = _Buffer()
            if len(buffer.rows) < self.max_events or event_type == "session.finished":
                buffer.rows.append(row(columns, i))
            else:
                self.stats.rows_dropped += 1
            if event_type == "session.finished" and not buffer.finishing:
                buffer.finishing = True
                self._timers[sid] = asyncio.get_running_loop().call_later(self.grace_s, self._flush, sid)

    async def aclose(self) -> None:
        """Export every buffered session (finished or not), wait for the exports, stop the exporter."""
        self._closed = True
        for sid in list(self._buffers):
            self._flush(sid)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._exporter.shutdown)
        self._pool.shutdown(wait=False)

    # --- exporting -----------------------------------------------------------------------
    def _flush(self, sid: str) -> None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()
        buffer = self._buffers.pop(sid, None)
        if buffer is None:
            return
        self._done[sid] = None
        while len(self._done) > _REMEMBER_DONE:
            self._done.popitem(last=False)
        if len(self._tasks) >= self.max_queued:
            self.stats.sessions_dropped += 1
            _log.warning("OpenTelemetry live export: %d sessions wait for the collector at %s; session %s is "
                         "not exported live (troupe events export-otel sends it from the lake)",
                         len(self._tasks), self.config.traces_url(), sid)
            return
        task = asyncio.ensure_future(self._export(sid, buffer.rows))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _export(self, sid: str, rows: list[dict[str, Any]]) -> None:
        try:
            spans = session_spans([Event.model_validate(r) for r in rows], policy=self._policy)
            result = await asyncio.get_running_loop().run_in_executor(
                self._pool, export_spans, spans, self.config, self._exporter)
        except Exception:
            self.stats.sessions_dropped += 1
            _log.exception("OpenTelemetry live export of session %s failed", sid)
            return
        self.stats.sessions_exported += 1
        self.stats.spans_exported += result.exported
        self.stats.spans_failed += result.spans - result.exported

    def pending(self) -> int:
        """Sessions buffered or being exported."""
        return len(self._buffers) + len(self._tasks)


def attach_live_export(core: EventLogCore, config: OtelConfig | None = None) -> LiveExporter | None:
    """Attach a :class:`LiveExporter` to an event log core when ``config`` (or, when it is ``None``,
    the environment: :meth:`OtelConfig.from_env`) names an endpoint; ``None`` when none does, or
    when the OpenTelemetry packages are missing (logged: a run never fails for its traces)."""
    config = config if config is not None else OtelConfig.from_env()
    if config is None:
        return None
    try:
        exporter = LiveExporter(config)
    except OtelUnavailableError as e:
        _log.warning("OpenTelemetry live export is off: %s", e.message)
        return None
    core.observers.append(exporter)
    _log.info("OpenTelemetry live export to %s (%s, contents %s)", config.traces_url(), config.protocol,
              "on" if config.capture_content else "off")
    return exporter


__all__ = ["LiveExportStats", "LiveExporter", "attach_live_export"]
