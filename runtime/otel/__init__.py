"""OpenTelemetry export: a session's events as spans in the GenAI semantic conventions, sent over
OTLP (HTTP or gRPC) live from the event log or in a batch from the lake. See ``docs/otel.md``.

The mapping (:mod:`~troupe.runtime.otel.mapper`) is plain Python; sending needs the ``otel`` extra
(``opentelemetry-sdk`` and the OTLP exporters), imported only when something is sent.
"""

from __future__ import annotations

from troupe.runtime.otel.attributes import ContentPolicy
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.export import ExportResult, OtelUnavailableError, export_spans
from troupe.runtime.otel.lake import LakeExport, NothingToExportError, export_from_lake, lake_events, token_totals
from troupe.runtime.otel.live import LiveExporter, attach_live_export
from troupe.runtime.otel.mapper import session_spans, spans_by_session
from troupe.runtime.otel.spans import SpanEventRecord, SpanRecord, span_id_for, trace_id_for

__all__ = [
    "ContentPolicy",
    "ExportResult",
    "LakeExport",
    "LiveExporter",
    "NothingToExportError",
    "OtelConfig",
    "OtelUnavailableError",
    "SpanEventRecord",
    "SpanRecord",
    "attach_live_export",
    "export_from_lake",
    "export_spans",
    "lake_events",
    "session_spans",
    "span_id_for",
    "spans_by_session",
    "token_totals",
    "trace_id_for",
]
