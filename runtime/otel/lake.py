"""Batch export of past sessions: read a run's or a session's events from the lake, map them to
spans (:mod:`troupe.runtime.otel.mapper`) and send them over OTLP (``troupe events export-otel``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from troupe.runtime.errors import TroupeError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.export import export_spans
from troupe.runtime.otel.mapper import spans_by_session
from troupe.runtime.otel.spans import SpanRecord
from troupe.runtime.storage.location import Storage


class NothingToExportError(TroupeError):
    """No event in the lake has that run id or session id."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lake_events(lake: str | Path | Storage, run_or_session: str) -> list[Event]:
    """Every event of the run ``run_or_session``, or of the session of that id, in time order."""
    ident = _quote(run_or_session)
    table = query(lake, f"SELECT * EXCLUDE (date) FROM events WHERE run_id = {ident} OR session_id = {ident} "
                        "ORDER BY ts, seq")
    return [Event.model_validate(row) for row in table.to_pylist()]


@dataclass
class LakeExport:
    """What :func:`export_from_lake` sent, per session, with the token totals it carried."""

    sessions: dict[str, int] = field(default_factory=dict)
    """Session id -> spans sent."""
    spans: int = 0
    exported: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    trace_ids: dict[str, str] = field(default_factory=dict)
    """Session id -> its trace id (32 hex digits), to find it in the backend."""

    @property
    def ok(self) -> bool:
        return self.exported == self.spans

    def as_dict(self) -> dict[str, object]:
        return {"sessions": self.sessions, "trace_ids": self.trace_ids, "spans": self.spans,
                "exported": self.exported, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


def token_totals(spans: list[SpanRecord]) -> tuple[int, int]:
    """The input and output tokens of the ``chat`` spans among ``spans``."""
    totals = [0, 0]
    for span in spans:
        if span.operation == "chat":
            for i, key in enumerate(("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")):
                value = span.attributes.get(key)
                totals[i] += value if isinstance(value, int) else 0
    return totals[0], totals[1]


def export_from_lake(lake: str | Path | Storage, run_or_session: str, config: OtelConfig) -> LakeExport:
    """Export every session of a run (or one session) from the lake; one trace per session."""
    events = lake_events(lake, run_or_session)
    if not events:
        raise NothingToExportError(f"no events with run id or session id {run_or_session!r} in the lake",
                                   id=run_or_session)
    result = LakeExport()
    for session_id, spans in spans_by_session(events, capture_content=config.capture_content).items():
        sent = export_spans(spans, config)
        tokens_in, tokens_out = token_totals(spans)
        result.sessions[session_id] = len(spans)
        result.trace_ids[session_id] = f"{spans[0].trace_id:032x}"
        result.spans += sent.spans
        result.exported += sent.exported
        result.input_tokens += tokens_in
        result.output_tokens += tokens_out
    return result


__all__ = ["LakeExport", "NothingToExportError", "export_from_lake", "lake_events", "token_totals"]
