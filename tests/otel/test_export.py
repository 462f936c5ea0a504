"""Configuration, the SDK's span objects, and the live exporter on an event log core (an in-memory
exporter stands in for the collector; tests/otel/test_phoenix.py sends to a real one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.otel.support import Recorded, record_demo
from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.events import events_to_columns
from troupe.runtime.otel import OtelConfig, export_spans, session_spans, trace_id_for
from troupe.runtime.otel.export import to_sdk_spans
from troupe.runtime.otel.live import LiveExporter


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return asyncio.run(record_demo(tmp_path_factory.mktemp("otel-lake")))


def test_config_from_the_environment() -> None:
    assert OtelConfig.from_env({}) is None
    cfg = OtelConfig.from_env({"TROUPE_OTEL_ENDPOINT": "http://127.0.0.1:6006", "TROUPE_OTEL_CONTENT": "1"})
    assert cfg is not None and cfg.traces_url() == "http://127.0.0.1:6006/v1/traces" and cfg.capture_content
    base = OtelConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert base is not None and base.traces_url() == "http://collector:4318/v1/traces" and not base.capture_content
    full = OtelConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://x.example/api/public/otel/v1/traces"})
    assert full is not None and full.traces_url() == "https://x.example/api/public/otel/v1/traces"
    langfuse = OtelConfig.from_env({"TROUPE_OTEL_ENDPOINT": "https://cloud.langfuse.com/api/public/otel"})
    assert langfuse is not None and langfuse.traces_url() == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    custom = OtelConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"})
    assert custom is not None and custom.traces_url() == "http://c:4318/custom"
    grpc = OtelConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert grpc is not None and grpc.protocol == "grpc" and grpc.traces_url() == "http://collector:4317"
    assert OtelConfig.from_env({"TROUPE_OTEL": "0", "TROUPE_OTEL_ENDPOINT": "http://x:1"}) is None
    assert OtelConfig.from_env({}, endpoint="http://x:1", capture_content=True).capture_content  # type: ignore[union-attr]


def test_sdk_spans_carry_ids_times_kinds_and_status(recorded: Recorded) -> None:
    spans = session_spans(recorded.events)
    sdk = to_sdk_spans(spans, OtelConfig(endpoint="http://127.0.0.1:1", resource_attributes={"a": "b"}))
    by_id = {s.context.span_id: s for s in sdk}
    assert all(s.context.trace_id == trace_id_for(recorded.session_id) for s in sdk)
    for record in spans:
        span = by_id[record.span_id]
        assert (span.parent.span_id if span.parent else None) == record.parent_id
        assert (span.start_time, span.end_time, span.name) == (record.start_ns, record.end_ns, record.name)
        assert span.kind == (SpanKind.CLIENT if record.operation == "chat" else SpanKind.INTERNAL)
        assert span.resource.attributes["service.name"] == "troupe" and span.resource.attributes["a"] == "b"
    memory = InMemorySpanExporter()
    result = export_spans(spans, OtelConfig(endpoint="http://127.0.0.1:1"), exporter=memory)
    assert result.ok and result.exported == len(spans) == len(memory.get_finished_spans())
    assert all(s.status.status_code == StatusCode.UNSET for s in memory.get_finished_spans())


def _live(**kwargs: object) -> tuple[LiveExporter, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    return LiveExporter(OtelConfig(endpoint="http://127.0.0.1:1"), exporter=memory, grace_s=0.05, **kwargs), memory  # type: ignore[arg-type]


async def test_live_export_from_the_event_log_equals_the_batch_mapping(recorded: Recorded, tmp_path: Path) -> None:
    live, memory = _live()
    core = EventLogCore(tmp_path / "lake", observers=[live])
    events = recorded.events
    finished = next(i for i, e in enumerate(events) if e.type == "session.finished")
    await core.append(events_to_columns(events[:finished]))
    await asyncio.sleep(0.2)
    assert memory.get_finished_spans() == ()  # nothing before the session ends
    await core.append(events_to_columns(events[finished:]))  # session.finished and the agents' last states
    for _ in range(100):
        if memory.get_finished_spans():
            break
        await asyncio.sleep(0.05)
    exported = {(s.context.span_id, s.parent.span_id if s.parent else None, s.name) for s in memory.get_finished_spans()}
    expected = {(s.span_id, s.parent_id, s.name) for s in session_spans(events)}
    assert exported == expected
    assert live.stats.sessions_exported == 1 and live.stats.spans_exported == len(expected)
    await core.append(events_to_columns(events[-1:]))  # a row after the export is counted, not exported again
    assert live.stats.rows_late == 1
    await core.close()
    assert len(memory.get_finished_spans()) == len(expected)


async def test_live_export_is_bounded_and_flushes_on_close(recorded: Recorded, tmp_path: Path) -> None:
    live, memory = _live(max_sessions=1, max_events=5)
    core = EventLogCore(tmp_path / "lake", observers=[live])
    unfinished = [e for e in recorded.events if e.type != "session.finished"]
    other = [e.model_copy(update={"session_id": "s-other", "event_id": e.event_id + "x"}) for e in unfinished[:3]]
    await core.append(events_to_columns(unfinished))
    assert live.stats.rows_dropped == len(unfinished) - 5
    await core.append(events_to_columns(other))  # a second session: the first is exported early, as it is
    await core.close()  # and the second when the log closes
    traces = {s.context.trace_id for s in memory.get_finished_spans()}
    assert traces == {trace_id_for(recorded.session_id), trace_id_for("s-other")}
    partial = [s for s in memory.get_finished_spans() if s.parent is None]
    assert all(s.attributes["troupe.partial"] is True for s in partial)
    assert live.stats.sessions_exported == 2 and live.pending() == 0


def test_without_an_endpoint_the_log_has_no_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from troupe.runtime.otel import attach_live_export

    for name in ("TROUPE_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    core = EventLogCore(tmp_path / "lake")
    assert attach_live_export(core) is None and core.observers == []
    monkeypatch.setenv("TROUPE_OTEL_ENDPOINT", "http://127.0.0.1:9")
    assert attach_live_export(core) is not None and len(core.observers) == 1


def test_grpc_and_http_exporters() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from troupe.runtime.otel.export import make_exporter

    grpc = make_exporter(OtelConfig(endpoint="http://127.0.0.1:4317", protocol="grpc"))
    http = make_exporter(OtelConfig(endpoint="http://127.0.0.1:4318", headers={"x-api-key": "k"}))
    assert isinstance(grpc, Grpc) and isinstance(http, Http)
    grpc.shutdown()
    http.shutdown()


def test_the_event_log_actor_takes_the_drivers_configuration(tmp_path: Path) -> None:
    """The Ray edge's shell builds its core with the exporter (constructed here without Ray)."""
    from troupe.actors.eventlog_actor import EventLogActor

    actor = EventLogActor(str(tmp_path / "lake"), wal_dir=None,
                          otel=OtelConfig(endpoint="http://127.0.0.1:9", capture_content=True).model_dump())
    (live,) = actor._core.observers
    assert isinstance(live, LiveExporter) and live.config.capture_content
