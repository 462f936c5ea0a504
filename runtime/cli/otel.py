"""``troupe events export-otel RUN_ID|SESSION_ID``: send past sessions from the lake to an
OpenTelemetry backend over OTLP, one trace per session (see docs/otel.md).

    troupe events export-otel RUN_OR_SESSION [--lake L] [--endpoint URL] [--protocol http|grpc]
                                              [--content] [--header K=V ...] [--json]

The endpoint defaults to ``$TROUPE_OTEL_ENDPOINT`` / ``$OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``,
else OTLP's local default (``http://localhost:4318``, gRPC ``http://localhost:4317``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEFAULT_ENDPOINTS = {"http": "http://localhost:4318", "grpc": "http://localhost:4317"}


def _lake(value: str | None) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


def _headers(pairs: list[str]) -> dict[str, str]:
    from troupe.runtime.errors import ConfigError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--header {pair!r}: write it as NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def _cmd_export(args: argparse.Namespace) -> int:
    from troupe.runtime.otel.config import OtelConfig, parse_protocol
    from troupe.runtime.otel.lake import export_from_lake

    config = OtelConfig.from_env(endpoint=args.endpoint, protocol=args.protocol,
                                 capture_content=True if args.content else None)
    if config is None:
        protocol = parse_protocol(args.protocol) or "http"
        config = OtelConfig(endpoint=DEFAULT_ENDPOINTS[protocol], protocol=protocol, capture_content=args.content)
    if args.header:
        config = config.model_copy(update={"headers": {**config.headers, **_headers(args.header)}})
    result = export_from_lake(_lake(args.lake), args.id, config)
    out: dict[str, Any] = {**result.as_dict(), "endpoint": config.traces_url(), "protocol": config.protocol,
                           "content": config.capture_content}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for sid, n in result.sessions.items():
            print(f"session {sid}  trace {result.trace_ids[sid]}  {n} spans")
        print(f"{result.exported}/{result.spans} spans sent to {out['endpoint']} ({config.protocol}); "
              f"tokens in {result.input_tokens}, out {result.output_tokens}; "
              f"contents {'on' if config.capture_content else 'off'}")
    return 0 if result.ok else 1


def add_parser(events_sub: Any) -> None:
    """Add ``export-otel`` to the ``troupe events`` subcommands."""
    p = events_sub.add_parser("export-otel", help="send past sessions to an OpenTelemetry backend over OTLP")
    p.add_argument("id", metavar="RUN_OR_SESSION", help="a run id (every session of it) or a session id")
    p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    p.add_argument("--endpoint", help="OTLP collector URL, e.g. http://localhost:6006 (Phoenix) or "
                                      "http://localhost:4318; default $TROUPE_OTEL_ENDPOINT or "
                                      "$OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318")
    p.add_argument("--protocol", choices=["http", "grpc"], default=None,
                   help="OTLP over HTTP/protobuf (default) or gRPC")
    p.add_argument("--content", action="store_true",
                   help="include message contents (prompts, replies, tool arguments and results), redacted")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="a header for the collector (repeat; also $OTEL_EXPORTER_OTLP_HEADERS)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_export)


__all__ = ["add_parser"]
