"""Metrics from the event stream: plain-Python aggregation, pushed in batches by a thin shell.

Every action is already an event, so the metrics are derived from events at the edge (the host
process that emits them) instead of being recorded where things happen. :class:`MetricsCore`
folds each event into in-process aggregates (a dict update, no Ray call); :meth:`MetricsCore.drain`
hands out what changed since the last drain as a :class:`MetricsBatch`, which the Ray shell
(``actors/ray_metrics.py``) records with ``ray.util.metrics`` about once a second and at each flush.
Per-event metric calls would cost a Ray core-worker call each; a batch costs one per series.

Tags, chosen so the number of series stays bounded however many sessions run (a sweep runs
10,000): ``team`` (the team's name), ``agent`` (its id in the team), ``model``, ``tool``,
``status``. No metric is tagged with a session or run id: a session's detail is in the event lake,
and a session tag would make a new series per session. The one exception is the sweep progress
gauge, tagged with the sweep's run id (one set of five series per sweep). As a guard against
dynamic names (spawned children, models a server reports), each tag keeps at most
``max_values_per_tag`` distinct values per process; later ones are reported as ``other``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from troupe.runtime.events import Event

COUNTER: Final = "counter"
GAUGE: Final = "gauge"
HISTOGRAM: Final = "histogram"

LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Histogram bucket bounds (seconds) for LLM and tool latency: tool calls take milliseconds,
model calls up to minutes."""

OTHER: Final = "other"
"""The tag value reported once a tag has seen ``max_values_per_tag`` distinct values."""
UNKNOWN: Final = ""
"""The ``team`` of a session this process cannot place, or a missing model/agent/tool."""

SWEEP_STATES: Final = ("total", "done", "running", "failed", "passed")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    """Name as recorded; Prometheus shows it prefixed ``ray_`` (counters also suffixed ``_total``)."""
    kind: str
    description: str
    tags: tuple[str, ...]
    boundaries: tuple[float, ...] = ()


SPECS: Final[dict[str, MetricSpec]] = {s.name: s for s in (
    MetricSpec("troupe_events", COUNTER, "Events emitted, by event type.", ("type",)),
    MetricSpec("troupe_llm_calls", COUNTER, "LLM calls by outcome (status ok or error).",
               ("team", "agent", "model", "status")),
    MetricSpec("troupe_llm_tokens", COUNTER, "LLM tokens: direction in (prompt) or out (completion).",
               ("team", "agent", "model", "direction")),
    MetricSpec("troupe_llm_latency_seconds", HISTOGRAM, "Wall time of one LLM call, as its agent saw it.",
               ("team", "agent", "model"), LATENCY_BUCKETS_S),
    MetricSpec("troupe_tool_calls", COUNTER, "Tool calls by tool and outcome (status ok or error).",
               ("team", "tool", "status")),
    MetricSpec("troupe_tool_latency_seconds", HISTOGRAM, "Wall time of one tool call, as its agent saw it.",
               ("team", "tool"), LATENCY_BUCKETS_S),
    MetricSpec("troupe_guardrail_denials", COUNTER, "Tool calls refused by a guardrail (permission or approval).",
               ("team", "agent", "tool")),
    MetricSpec("troupe_sessions_finished", COUNTER, "Sessions that ended, by final status.", ("team", "status")),
    MetricSpec("troupe_sessions_active", GAUGE, "Sessions running (started, not finished), per process.", ("team",)),
    MetricSpec("troupe_mailbox_depth", GAUGE, "Messages waiting in agents' mailboxes, per process (sampled).",
               ("team", "agent")),
    MetricSpec("troupe_sweep_samples", GAUGE, "An eval sweep's samples by state (total, done, running, failed, "
               "passed); done includes samples recorded by an earlier, resumed run.", ("run", "suite", "state")),
)}

Key = tuple[str, tuple[str, ...]]
"""(metric name, tag values in the order of its spec's tags)."""


@dataclass
class MetricsBatch:
    """What to record: counter increments, histogram observations, gauge values (only changed ones)."""

    counters: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    observations: list[tuple[str, dict[str, str], list[float]]] = field(default_factory=list)
    gauges: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counters or self.observations or self.gauges)

    def totals(self) -> dict[str, float]:
        """Sum per metric name (observations are counted): handy in tests and logs."""
        out: dict[str, float] = defaultdict(float)
        for name, _, value in self.counters:
            out[name] += value
        for name, _, values in self.observations:
            out[name] += len(values)
        for name, _, value in self.gauges:
            out[name] += value
        return dict(out)


def _tags(name: str, values: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(SPECS[name].tags, values, strict=True))


class MetricsCore:
    """Folds events into aggregates; :meth:`drain` returns what to record since the last drain.

    ``team_of(session_id)`` names the team of a session held by this process (``None`` when it
    does not know); it is asked once per session and remembered.
    """

    def __init__(self, *, team_of: Callable[[str], str | None] | None = None, max_values_per_tag: int = 100,
                 max_sessions_remembered: int = 20_000, max_observations: int = 100_000) -> None:
        self.team_of = team_of or (lambda session_id: None)
        self.max_values_per_tag = max_values_per_tag
        self.max_sessions_remembered = max_sessions_remembered
        self.max_observations = max_observations
        self._teams: dict[str, str] = {}
        self._values: dict[str, set[str]] = defaultdict(set)
        self._counts: defaultdict[Key, float] = defaultdict(float)
        self._types: dict[str, int] = {}
        self._observed: defaultdict[Key, list[float]] = defaultdict(list)
        self._n_observed = 0
        self.dropped_observations = 0
        """Observations not kept because ``max_observations`` were waiting for a drain."""
        self._active: dict[str, int] = {}
        self._mailboxes: dict[tuple[str, ...], float] = {}
        self._reported: dict[Key, float] = {}
        self._handlers: dict[str, Callable[[Event], None]] = {
            "llm.response": self._llm_response,
            "llm.error": self._llm_error,
            "tool.result": self._tool_result,
            "tool.error": self._tool_result,
            "guardrail.denied": self._denied,
            "session.started": self._session_started,
            "session.finished": self._session_finished,
        }

    # --- tag values -------------------------------------------------------------------------
    def _bounded(self, tag: str, value: str | None) -> str:
        if not value:
            return UNKNOWN
        seen = self._values[tag]
        if value in seen:
            return value
        if len(seen) >= self.max_values_per_tag:
            return OTHER
        seen.add(value)
        return value

    def team(self, session_id: str) -> str:
        team = self._teams.get(session_id)
        if team is None:
            team = self._bounded("team", self.team_of(session_id))
            teams = self._teams
            if len(teams) >= self.max_sessions_remembered:
                del teams[next(iter(teams))]
            teams[session_id] = team
        return team

    # --- events -----------------------------------------------------------------------------
    def observe(self, event: Event) -> None:
        """Fold one event in (cheap: a dict update; most event types only bump ``troupe_events``)."""
        kind = event.type
        types = self._types
        types[kind] = types.get(kind, 0) + 1
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def observe_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.observe(event)

    def _observe_value(self, key: Key, value: float) -> None:
        if self._n_observed >= self.max_observations:
            self.dropped_observations += 1
            return
        self._observed[key].append(value)
        self._n_observed += 1

    def _llm_response(self, event: Event) -> None:
        bounded = self._bounded
        tags = (self.team(event.session_id), bounded("agent", event.agent), bounded("model", event.model))
        counts = self._counts
        counts[("troupe_llm_calls", (*tags, event.status or "ok"))] += 1
        if event.tokens_in:
            counts[("troupe_llm_tokens", (*tags, "in"))] += event.tokens_in
        if event.tokens_out:
            counts[("troupe_llm_tokens", (*tags, "out"))] += event.tokens_out
        if event.duration_ms is not None:
            self._observe_value(("troupe_llm_latency_seconds", tags), event.duration_ms / 1e3)

    def _llm_error(self, event: Event) -> None:
        bounded = self._bounded
        tags = (self.team(event.session_id), bounded("agent", event.agent), bounded("model", event.model), "error")
        self._counts[("troupe_llm_calls", tags)] += 1

    def _tool_result(self, event: Event) -> None:
        team, tool = self.team(event.session_id), self._bounded("tool", event.tool)
        status = event.status or ("ok" if event.type == "tool.result" else "error")
        self._counts[("troupe_tool_calls", (team, tool, status))] += 1
        if event.duration_ms is not None:
            self._observe_value(("troupe_tool_latency_seconds", (team, tool)), event.duration_ms / 1e3)

    def _denied(self, event: Event) -> None:
        tags = (self.team(event.session_id), self._bounded("agent", event.agent), self._bounded("tool", event.tool))
        self._counts[("troupe_guardrail_denials", tags)] += 1

    def _session_started(self, event: Event) -> None:
        team = self.team(event.session_id)
        self._active[team] = self._active.get(team, 0) + 1

    def _session_finished(self, event: Event) -> None:
        team = self.team(event.session_id)
        self._active[team] = max(0, self._active.get(team, 0) - 1)
        self._counts[("troupe_sessions_finished", (team, event.status or UNKNOWN))] += 1

    # --- sampled state ----------------------------------------------------------------------
    def sample_mailboxes(self, depths: Mapping[tuple[str, str], int]) -> None:
        """The current mailbox depths by (team, agent) (see :func:`troupe.actors.ray_metrics.mailbox_depths`);
        replaces the last sample."""
        out: dict[tuple[str, ...], float] = {}
        for (team, agent), n in depths.items():
            key = (self._bounded("team", team), self._bounded("agent", agent))
            out[key] = out.get(key, 0) + n
        self._mailboxes = out

    # --- draining ---------------------------------------------------------------------------
    def _gauges_now(self) -> dict[Key, float]:
        now: dict[Key, float] = {("troupe_sessions_active", (team,)): float(n) for team, n in self._active.items()}
        for tags, n in self._mailboxes.items():
            now[("troupe_mailbox_depth", tags)] = n
        return now

    def drain(self) -> MetricsBatch:
        """Counter increments and observations since the last drain, and the gauges that changed
        (a series that disappeared is set to 0 once, then forgotten)."""
        batch = MetricsBatch()
        counts, self._counts = self._counts, defaultdict(float)
        types, self._types = self._types, {}
        batch.counters = [("troupe_events", {"type": kind}, float(n)) for kind, n in types.items()]
        batch.counters += [(name, _tags(name, values), v) for (name, values), v in counts.items() if v > 0]
        observed, self._observed, self._n_observed = self._observed, defaultdict(list), 0
        batch.observations = [(name, _tags(name, values), vs) for (name, values), vs in observed.items()]
        self._active = {team: n for team, n in self._active.items() if n}
        live = self._gauges_now()
        now = {**dict.fromkeys(self._reported.keys() - live.keys(), 0.0), **live}
        batch.gauges = [(name, _tags(name, values), v) for (name, values), v in now.items()
                        if self._reported.get((name, values)) != v]
        self._reported = live
        return batch


def sweep_gauges(progress: Any) -> dict[str, float]:
    """An eval sweep's :class:`~troupe.evals.sweep.Progress` as ``troupe_sweep_samples`` values by state."""
    return {
        "total": float(progress.total),
        "done": float(progress.done + progress.skipped),
        "running": float(progress.running),
        "failed": float(progress.failed),
        "passed": float(progress.passed),
    }


__all__ = [
    "COUNTER",
    "GAUGE",
    "HISTOGRAM",
    "LATENCY_BUCKETS_S",
    "OTHER",
    "SPECS",
    "SWEEP_STATES",
    "UNKNOWN",
    "MetricSpec",
    "MetricsBatch",
    "MetricsCore",
    "sweep_gauges",
]
