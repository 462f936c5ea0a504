"""The metrics core: events in, batches of counter increments, observations and gauges out (no Ray)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.runtime.teams import call, team
from troupe.actors.ray_metrics import MeteredBuffer, RayRecorder, mailbox_depths, sweep_progress_reporter
from troupe.runtime.eventlog.metrics import OTHER, SPECS, MetricsBatch, MetricsCore, sweep_gauges
from troupe.runtime.events import make_event

TEAMS = {"s-1": "research", "s-2": "research", "s-3": "coding"}


def ev(type: str, session: str = "s-1", **fields: Any) -> Any:
    return make_event(type, run_id="r-1", session_id=session, **fields)


def core() -> MetricsCore:
    return MetricsCore(team_of=TEAMS.get)


def as_dict(rows: list[tuple[str, dict[str, str], Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    return {(name, tuple(sorted(tags.items()))): value for name, tags, value in rows}


def key(name: str, **tags: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(tags.items()))


def test_llm_calls_tokens_and_latency_by_team_agent_model() -> None:
    m = core()
    m.observe(ev("llm.request", agent="lead", model="gpt"))
    m.observe(ev("llm.response", agent="lead", model="gpt", tokens_in=100, tokens_out=20, duration_ms=1500, status="ok"))
    m.observe(ev("llm.response", session="s-2", agent="lead", model="gpt", tokens_in=50, tokens_out=0, duration_ms=500))
    m.observe(ev("llm.error", session="s-3", agent="a", model="gpt", status="error"))
    batch = m.drain()
    counters = as_dict(batch.counters)
    lead = {"team": "research", "agent": "lead", "model": "gpt"}
    assert counters[key("troupe_llm_calls", **lead, status="ok")] == 2
    assert counters[key("troupe_llm_calls", team="coding", agent="a", model="gpt", status="error")] == 1
    assert counters[key("troupe_llm_tokens", **lead, direction="in")] == 150
    assert counters[key("troupe_llm_tokens", **lead, direction="out")] == 20
    assert as_dict(batch.observations)[key("troupe_llm_latency_seconds", **lead)] == [1.5, 0.5]
    assert counters[key("troupe_events", type="llm.response")] == 2
    assert counters[key("troupe_events", type="llm.request")] == 1


def test_tool_calls_latency_and_guardrail_denials() -> None:
    m = core()
    m.observe(ev("tool.call", agent="lead", tool="search"))
    m.observe(ev("tool.result", agent="lead", tool="search", status="ok", duration_ms=20))
    m.observe(ev("guardrail.denied", agent="lead", tool="write", status="denied"))
    m.observe(ev("tool.error", agent="lead", tool="write", status="error", duration_ms=1))
    batch = m.drain()
    counters = as_dict(batch.counters)
    assert counters[key("troupe_tool_calls", team="research", tool="search", status="ok")] == 1
    assert counters[key("troupe_tool_calls", team="research", tool="write", status="error")] == 1
    assert counters[key("troupe_guardrail_denials", team="research", agent="lead", tool="write")] == 1
    observed = as_dict(batch.observations)
    assert observed[key("troupe_tool_latency_seconds", team="research", tool="search")] == [0.02]


def test_drain_returns_increments_since_the_last_drain() -> None:
    m = core()
    m.observe(ev("tool.result", tool="t", status="ok", duration_ms=1))
    assert m.drain().totals()["troupe_tool_calls"] == 1
    assert not m.drain()  # nothing new, no gauge changed: nothing to record
    m.observe(ev("tool.result", tool="t", status="ok", duration_ms=1))
    m.observe(ev("tool.result", tool="t", status="ok", duration_ms=1))
    assert m.drain().totals()["troupe_tool_calls"] == 2


def test_active_sessions_gauge_goes_to_zero_once_then_is_forgotten() -> None:
    m = core()
    m.observe(ev("session.started", status="running"))
    m.observe(ev("session.started", session="s-2", status="running"))
    m.observe(ev("session.started", session="s-3", status="running"))
    gauges = as_dict(m.drain().gauges)
    assert gauges == {key("troupe_sessions_active", team="research"): 2,
                      key("troupe_sessions_active", team="coding"): 1}
    m.observe(ev("session.finished", status="completed"))
    m.observe(ev("session.finished", session="s-3", status="failed"))
    batch = m.drain()
    assert as_dict(batch.gauges) == {key("troupe_sessions_active", team="research"): 1,
                                     key("troupe_sessions_active", team="coding"): 0}
    counters = as_dict(batch.counters)
    assert counters[key("troupe_sessions_finished", team="research", status="completed")] == 1
    assert counters[key("troupe_sessions_finished", team="coding", status="failed")] == 1
    assert not m.drain().gauges  # unchanged: not recorded again; coding's 0 was recorded once


def test_mailbox_depth_is_sampled_and_cleared_when_agents_go() -> None:
    m = core()
    m.sample_mailboxes({("research", "lead"): 2, ("research", "a"): 0})
    assert as_dict(m.drain().gauges) == {key("troupe_mailbox_depth", team="research", agent="lead"): 2,
                                         key("troupe_mailbox_depth", team="research", agent="a"): 0}
    m.sample_mailboxes({("research", "a"): 0})
    assert as_dict(m.drain().gauges) == {key("troupe_mailbox_depth", team="research", agent="lead"): 0}
    m.sample_mailboxes({})
    assert not m.drain()  # a's series already reads 0: nothing to record as it goes


def test_tag_values_are_bounded_and_sessions_never_become_tags() -> None:
    m = MetricsCore(team_of=lambda sid: "t", max_values_per_tag=3)
    for i in range(10):
        m.observe(ev("tool.result", session=f"s-{i}", tool=f"tool{i}", status="ok", duration_ms=1))
    counters = as_dict(m.drain().counters)
    tools = {dict(tags)["tool"]: v for (name, tags), v in counters.items() if name == "troupe_tool_calls"}
    assert tools == {"tool0": 1, "tool1": 1, "tool2": 1, OTHER: 7}
    assert all("session" not in s.tags and "run" not in s.tags for s in SPECS.values() if s.name != "troupe_sweep_samples")


def test_team_is_asked_once_per_session_and_unknown_sessions_are_blank() -> None:
    asked: list[str] = []

    def team_of(sid: str) -> str | None:
        asked.append(sid)
        return TEAMS.get(sid)

    m = MetricsCore(team_of=team_of)
    for _ in range(3):
        m.observe(ev("tool.result", tool="t", status="ok"))
    m.observe(ev("tool.result", session="s-gone", tool="t", status="ok"))
    counters = as_dict(m.drain().counters)
    assert asked == ["s-1", "s-gone"]
    assert counters[key("troupe_tool_calls", team="", tool="t", status="ok")] == 1


def test_every_batch_row_matches_its_spec() -> None:
    m = core()
    for e in [ev("llm.response", agent="a", model="m", tokens_in=1, tokens_out=1, duration_ms=1),
              ev("llm.error", agent="a", model="m"), ev("tool.result", tool="t", duration_ms=1),
              ev("guardrail.denied", agent="a", tool="t"), ev("session.started"), ev("session.started", session="s-2"),
              ev("session.finished", status="x")]:
        m.observe(e)
    m.sample_mailboxes({("research", "a"): 1})
    batch = m.drain()
    rows = [*batch.counters, *batch.observations, *batch.gauges]
    assert {name for name, _, _ in rows} == set(SPECS) - {"troupe_sweep_samples"}
    for name, tags, _ in rows:
        assert tuple(tags) == SPECS[name].tags
        assert all(isinstance(v, str) for v in tags.values())


def test_sweep_gauges_count_resumed_samples_as_done() -> None:
    class P:
        total, skipped, done, running, failed, passed = 10, 3, 4, 2, 1, 3

    assert sweep_gauges(P()) == {"total": 10, "done": 7, "running": 2, "failed": 1, "passed": 3}


def test_sweep_reporter_is_none_without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert sweep_progress_reporter() is None


def test_sweep_reporter_tags_the_gauges_with_the_progress_run_and_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import troupe.actors.ray_metrics as ray_metrics
    from troupe.evals.sweep import Progress

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setenv("TROUPE_METRICS", "1")
    recorded: list[MetricsBatch] = []
    monkeypatch.setattr(ray_metrics, "recorder", lambda: types.SimpleNamespace(record=recorded.append))
    report = sweep_progress_reporter()
    assert report is not None
    report(Progress(total=5, run_id="r-eval-1", suite="bench", skipped=1, done=2, running=1, passed=2))
    assert as_dict(recorded[0].gauges) == {
        key("troupe_sweep_samples", run="r-eval-1", suite="bench", state=state): value
        for state, value in {"total": 5, "done": 3, "running": 1, "failed": 0, "passed": 2}.items()
    }


class FakeMetric:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append(("inc", value, tags))

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append(("observe", value, tags))

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append(("set", value, tags))


def test_recorder_makes_one_call_per_series_and_one_per_observation() -> None:
    rec = RayRecorder()
    fakes: dict[str, FakeMetric] = {}
    rec._metric = lambda name: fakes.setdefault(name, FakeMetric())  # type: ignore[method-assign]
    tags = {"team": "t", "tool": "x", "status": "ok"}
    rec.record(MetricsBatch(counters=[("troupe_tool_calls", tags, 5.0)],
                            observations=[("troupe_tool_latency_seconds", {"team": "t", "tool": "x"}, [0.1, 0.2])],
                            gauges=[("troupe_sessions_active", {"team": "t"}, 3.0)]))
    assert fakes["troupe_tool_calls"].calls == [("inc", 5.0, tags)]
    assert [c[1] for c in fakes["troupe_tool_latency_seconds"].calls] == [0.1, 0.2]
    assert fakes["troupe_sessions_active"].calls == [("set", 3.0, {"team": "t"})]


async def test_metered_buffer_folds_events_and_records_on_flush_and_periodically() -> None:
    """A host's buffer: events still ship as before; metrics are recorded on flush and each interval."""
    from troupe.runtime.session.host import HostCore

    shipped: list[int] = []
    recorded: list[MetricsBatch] = []

    async def ship(columns: dict[str, list[Any]]) -> int:
        shipped.append(len(columns["type"]))
        return len(columns["type"])

    host: dict[str, HostCore] = {}
    buffer = MeteredBuffer(ship, sessions=lambda: host["core"].sessions, interval_s=0.05, record=recorded.append)
    host["core"] = HostCore(sink=buffer)
    buffer.start()
    try:
        cfg = team([{"id": "lead", "tools": ["tests.support.tool_fixtures:io_wait"]}],
                   scripts={"lead": [{"tool_calls": [call("io_wait", seconds=0, folder="/tmp", tag="m")]},
                                     {"text": "done"}]})
        from troupe.runtime.ids import RunId, SessionId
        from troupe.runtime.session.spec import SessionSpec

        spec = SessionSpec(session_id=SessionId.new(), run_id=RunId.new(), team=cfg, placement="packed")
        result = await host["core"].run_session(spec, "go", timeout=30)
        assert str(result.status) == "completed", result.error
        await buffer.flush()
        totals: dict[str, float] = {}
        for batch in recorded:
            for name, value in batch.totals().items():
                totals[name] = totals.get(name, 0) + value
        assert totals["troupe_llm_calls"] == 2 and totals["troupe_tool_calls"] == 1
        assert totals["troupe_sessions_finished"] == 1
        assert sum(shipped) > 0
        before = len(recorded)
        buffer.emit(make_event("tool.result", run_id="r", session_id="s-x", tool="t", status="ok"))
        await asyncio.sleep(0.3)  # the periodic push records it without a flush
        assert any(b.totals().get("troupe_tool_calls") for b in recorded[before:])
    finally:
        await buffer.close()
        await host["core"].close()


def test_mailbox_depths_sum_agents_of_one_team_across_sessions() -> None:
    from troupe.runtime.ids import RunId, SessionId
    from troupe.runtime.messages import Envelope
    from troupe.runtime.session.host import HostCore
    from troupe.runtime.session.spec import SessionSpec

    async def scenario() -> dict[tuple[str, str], int]:
        host = HostCore(sink=_NullSink())
        cfg = team([{"id": "lead"}, {"id": "b"}], scripts={"*": [{"text": "x"}]})
        sids = [SessionId.new(), SessionId.new()]
        for sid in sids:
            await host.start_session(SessionSpec(session_id=sid, run_id=RunId.new(), team=cfg), ["lead", "b"])
        for sid in sids:  # no await from here on: the agents cannot take their messages yet
            host.sessions[sid].guests["b"].mailbox.put(Envelope(session_id=sid, sender="lead", recipient="b",
                                                                 content="hi"))
        depths = mailbox_depths(host.sessions)
        await host.close()
        return depths

    assert asyncio.run(scenario()) == {("t", "lead"): 0, ("t", "b"): 2}


class _NullSink:
    def emit(self, event: Any) -> None:
        pass


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_metrics_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from troupe.actors.ray_metrics import host_event_buffer
    from troupe.runtime.eventlog.buffer import EventBuffer

    async def ship(columns: dict[str, list[Any]]) -> int:
        return 0

    monkeypatch.setenv("TROUPE_METRICS", value)
    buf = host_event_buffer(ship, dict)
    assert type(buf) is EventBuffer
    monkeypatch.setenv("TROUPE_METRICS", "1")
    assert isinstance(host_event_buffer(ship, dict), MeteredBuffer)


def test_the_example_grafana_dashboard_queries_only_metrics_and_tags_that_exist() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "troupe_dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        for metric in re.findall(r"ray_(troupe_\w+)", expr):
            name = re.sub(r"_(total|bucket|count|sum)$", "", metric)
            assert name in SPECS, expr
            tags = set(SPECS[name].tags) | {"le", "SessionName"}
            for group in re.findall(r"by \(([^)]*)\)", expr):
                assert {g.strip() for g in group.split(",")} <= tags | {"Name"}, expr
