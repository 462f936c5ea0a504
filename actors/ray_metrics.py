"""The Ray side of Troupe's metrics: record :class:`troupe.runtime.eventlog.metrics.MetricsBatch` es with
``ray.util.metrics``, so they reach each node's metrics export port (Prometheus, shown with the
prefix ``ray_``) and the dashboard's Grafana panels.

:class:`MeteredBuffer` is a host's :class:`~troupe.runtime.eventlog.buffer.EventBuffer` that also folds each
event into a :class:`~troupe.runtime.eventlog.metrics.MetricsCore` (a dict update) and records the aggregates
every ``TROUPE_METRICS_INTERVAL_S`` seconds (default 1) and on each explicit flush, which a host
does before it is closed, so a dedicated host's last figures are recorded before it goes.
``TROUPE_METRICS=0`` in the workers' environment turns all of it off (a plain buffer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from troupe.runtime.agent.core import AgentCore
from troupe.runtime.eventlog.buffer import EventBuffer, Ship
from troupe.runtime.eventlog.metrics import COUNTER, GAUGE, SPECS, MetricsBatch, MetricsCore, sweep_gauges
from troupe.runtime.events import Event

_log = logging.getLogger(__name__)

ENABLED_ENV = "TROUPE_METRICS"
INTERVAL_ENV = "TROUPE_METRICS_INTERVAL_S"
DEFAULT_INTERVAL_S = 1.0


def metrics_enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def _interval_s() -> float:
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class RayRecorder:
    """This process's ``ray.util.metrics`` objects, made on first use from :data:`troupe.runtime.eventlog.metrics.SPECS`."""

    def __init__(self) -> None:
        self._metrics: dict[str, Any] = {}

    def _metric(self, name: str) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            from ray.util.metrics import Counter, Gauge, Histogram

            spec = SPECS[name]
            if spec.kind == COUNTER:
                metric = Counter(spec.name, spec.description, tag_keys=spec.tags)
            elif spec.kind == GAUGE:
                metric = Gauge(spec.name, spec.description, tag_keys=spec.tags)
            else:
                metric = Histogram(spec.name, spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tags)
            self._metrics[name] = metric
        return metric

    def record(self, batch: MetricsBatch) -> None:
        for name, tags, value in batch.counters:
            self._metric(name).inc(value, tags)
        for name, tags, values in batch.observations:
            observe = self._metric(name).observe
            for value in values:
                observe(value, tags)
        for name, tags, value in batch.gauges:
            self._metric(name).set(value, tags)


_recorder: RayRecorder | None = None


def recorder() -> RayRecorder:
    """The process-wide recorder (one set of metric objects per process)."""
    global _recorder
    if _recorder is None:
        _recorder = RayRecorder()
    return _recorder


def mailbox_depths(sessions: Mapping[Any, Any]) -> dict[tuple[str, str], int]:
    """Messages waiting per (team, agent), summed over the sessions a host holds
    (``HostCore.sessions``: session id -> its share, with ``spec`` and ``guests``); only the agents
    this process runs (an :class:`~troupe.runtime.agent.core.AgentCore`) are counted."""
    out: dict[tuple[str, str], int] = {}
    for held in list(sessions.values()):
        team = held.spec.team.name
        for agent, guest in list(held.guests.items()):
            if isinstance(guest, AgentCore):
                key = (team, str(agent))
                out[key] = out.get(key, 0) + len(guest.mailbox)
    return out


class MeteredBuffer(EventBuffer):
    """An event buffer that also turns the events it carries into metrics (see the module docstring).

    ``sessions`` returns the host's held sessions (``HostCore.sessions``): it names each event's
    team and is sampled for mailbox depths at each push.
    """

    def __init__(self, ship: Ship, *, sessions: Callable[[], Mapping[Any, Any]], interval_s: float | None = None,
                 record: Callable[[MetricsBatch], None] | None = None, **options: Any) -> None:
        super().__init__(ship, **options)
        self._sessions = sessions
        self.metrics = MetricsCore(team_of=self._team_of)
        self._observe = self.metrics.observe
        self.interval_s = interval_s if interval_s is not None else _interval_s()
        self._record = record or recorder().record
        self._pusher: asyncio.Task[None] | None = None
        self._failed_pushes = 0

    def _team_of(self, session_id: str) -> str | None:
        held = self._sessions().get(session_id)
        return None if held is None else held.spec.team.name

    def emit(self, event: Event) -> None:
        try:
            self._observe(event)
        except Exception:  # metrics must never break the event path
            _log.exception("metrics: could not fold in a %s event", event.type)
        EventBuffer.emit(self, event)

    def push(self) -> MetricsBatch:
        """Record what changed since the last push (mailbox depths are sampled now)."""
        try:
            self.metrics.sample_mailboxes(mailbox_depths(self._sessions()))
            batch = self.metrics.drain()
            if batch:
                self._record(batch)
            return batch
        except Exception:
            self._failed_pushes += 1
            if self._failed_pushes <= 3:
                _log.exception("metrics: recording a batch failed")
            return MetricsBatch()

    async def _push_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.push()

    def start(self) -> None:
        super().start()
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push_periodically(), name="troupe-metrics")

    async def flush(self) -> None:
        try:
            await super().flush()
        finally:
            self.push()

    async def close(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        await super().close()


def host_event_buffer(ship: Ship, sessions: Callable[[], Mapping[Any, Any]]) -> EventBuffer:
    """A host's event buffer: metered unless ``TROUPE_METRICS=0``."""
    if metrics_enabled():
        return MeteredBuffer(ship, sessions=sessions)
    return EventBuffer(ship)


def sweep_progress_reporter() -> Callable[[Any], None] | None:
    """A sweep's ``on_progress`` callback setting ``troupe_sweep_samples{run, suite, state}`` from its
    :class:`~troupe.evals.sweep.Progress` (which names the run and the suite), or ``None`` where there
    is nothing to report to (no Ray in this process, or metrics off)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized() or not metrics_enabled():
        return None

    def report(progress: Any) -> None:
        try:
            tags = {"run": progress.run_id, "suite": progress.suite}
            gauges = [("troupe_sweep_samples", {**tags, "state": state}, value)
                      for state, value in sweep_gauges(progress).items()]
            recorder().record(MetricsBatch(gauges=gauges))
        except Exception:
            _log.exception("metrics: recording sweep progress failed")

    return report


__all__ = ["MeteredBuffer", "RayRecorder", "host_event_buffer", "mailbox_depths", "metrics_enabled", "recorder",
           "sweep_progress_reporter"]
