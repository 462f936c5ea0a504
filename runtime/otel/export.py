"""Send spans over OTLP with the OpenTelemetry SDK's exporters (the ``otel`` extra:
``opentelemetry-sdk``, ``opentelemetry-exporter-otlp-proto-http``, optionally ``-grpc``).

Spans are built from recorded events, after the fact, with their recorded times and derived ids,
so they go straight to the exporter as ``ReadableSpan`` objects: no tracer, no global provider,
nothing installed in the process's OpenTelemetry state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Final

from troupe.runtime.errors import ConfigError
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.spans import SpanRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

EXPORT_BATCH: Final = 512
"""Spans per OTLP request."""
INSTALL_HINT: Final = "pip install 'troupe-runtime[otel]' (opentelemetry-sdk and the OTLP exporters)"


class OtelUnavailableError(ConfigError):
    """The OpenTelemetry SDK or the exporter for the chosen protocol is not installed."""


def _troupe_version() -> str:
    try:
        return version("troupe-runtime")
    except PackageNotFoundError:
        return "0"


def to_sdk_spans(spans: Sequence[SpanRecord], config: OtelConfig) -> list[ReadableSpan]:
    """:class:`SpanRecord` objects as the SDK's finished spans, with the configured resource."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    except ImportError as e:
        raise OtelUnavailableError(f"OpenTelemetry export needs the SDK ({e}): {INSTALL_HINT}") from None
    resource = Resource.create({"service.name": config.service_name, **config.resource_attributes})
    scope = InstrumentationScope("troupe", _troupe_version())
    sampled = TraceFlags(TraceFlags.SAMPLED)
    kinds = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}
    codes = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
    out: list[ReadableSpan] = []
    for span in spans:
        parent = SpanContext(span.trace_id, span.parent_id, False, sampled) if span.parent_id is not None else None
        out.append(ReadableSpan(
            span.name,
            context=SpanContext(span.trace_id, span.span_id, False, sampled),
            parent=parent,
            resource=resource,
            attributes=dict(span.attributes),
            events=[Event(e.name, dict(e.attributes), e.ts_ns) for e in span.events],
            kind=kinds[span.kind],
            status=Status(codes[span.status], span.status_message if span.status == "error" else None),
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=scope,
        ))
    return out


def make_exporter(config: OtelConfig) -> SpanExporter:
    """The SDK's OTLP span exporter for ``config`` (HTTP/protobuf or gRPC)."""
    kwargs: dict[str, Any] = {"endpoint": config.traces_url(), "timeout": config.timeout_s}
    if config.headers:
        kwargs["headers"] = dict(config.headers)
    if config.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as e:
            raise OtelUnavailableError(f"OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc ({e})") from None
        return GrpcExporter(insecure=(config.endpoint or "").startswith("http://") or None, **kwargs)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    except ImportError as e:
        raise OtelUnavailableError(f"OTLP over HTTP needs opentelemetry-exporter-otlp-proto-http ({e}): "
                                   f"{INSTALL_HINT}") from None
    return HttpExporter(**kwargs)


@dataclass(frozen=True)
class ExportResult:
    """What one export sent: spans handed over and spans the collector accepted."""

    spans: int
    exported: int

    @property
    def ok(self) -> bool:
        return self.exported == self.spans


def export_spans(spans: Sequence[SpanRecord], config: OtelConfig, exporter: SpanExporter | None = None) -> ExportResult:
    """Send ``spans`` (blocking: the SDK's exporters retry with backoff up to ``timeout_s``).

    ``exporter``: one to reuse (the live exporter keeps one); otherwise one is made for this call
    and shut down after it.
    """
    own = exporter is None
    exp = make_exporter(config) if exporter is None else exporter
    from opentelemetry.sdk.trace.export import SpanExportResult  # importable: an exporter exists

    exported = 0
    try:
        for i in range(0, len(spans), EXPORT_BATCH):
            batch = to_sdk_spans(spans[i:i + EXPORT_BATCH], config)
            if exp.export(batch) == SpanExportResult.SUCCESS:
                exported += len(batch)
            else:
                _log.warning("OTLP export of %d spans to %s failed", len(batch), config.traces_url())
    finally:
        if own:
            exp.shutdown()
    return ExportResult(spans=len(spans), exported=exported)


__all__ = ["ExportResult", "OtelUnavailableError", "export_spans", "make_exporter", "to_sdk_spans"]
