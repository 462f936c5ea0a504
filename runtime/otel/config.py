"""Where and how spans are exported: an OTLP endpoint (HTTP or gRPC), headers, contents on or off.

From the environment (:meth:`OtelConfig.from_env`): ``TROUPE_OTEL_ENDPOINT``, else the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``TROUPE_OTEL_PROTOCOL``
(else ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``: ``http/protobuf`` or ``grpc``);
``TROUPE_OTEL_CONTENT=1`` exports message contents (redacted); ``TROUPE_OTEL=0`` turns live
export off whatever else is set. Headers (an API key for a hosted backend) come from
``OTEL_EXPORTER_OTLP_HEADERS``, read by the exporter itself, or from ``headers``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.errors import ConfigError

Protocol = Literal["http", "grpc"]
TRACES_PATH: Final = "/v1/traces"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


def _protocol(value: str | None) -> Protocol | None:
    if not value:
        return None
    value = value.strip().lower()
    if value in ("grpc",):
        return "grpc"
    if value in ("http", "http/protobuf", "http/json"):
        return "http"
    raise ConfigError(f"unknown OTLP protocol {value!r}: use 'http' (http/protobuf) or 'grpc'")


class OtelConfig(BaseModel):
    """An OTLP destination. Crosses to the event log's process, so it is a plain model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str | None = None
    """The collector: a base URL (``http://host:4318``, ``https://cloud.langfuse.com/api/public/otel``),
    to which ``/v1/traces`` is added unless it ends with it, or ``http://host:4317`` for gRPC; ``None``:
    the exporter's own default (``OTEL_EXPORTER_OTLP_*``)."""
    endpoint_is_full: bool = False
    """``endpoint`` is the traces URL as it is (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): nothing is added."""
    protocol: Protocol = "http"
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Sent with every export (``Authorization``, ``x-api-key``, ...); never logged."""
    capture_content: bool = False
    """Export prompts, replies, tool arguments and results, task goals and outputs, blackboard values
    (redacted as the lake is). Off by default: span attributes then hold ids, names and figures."""
    service_name: str = "troupe"
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    """Extra resource attributes (``openinference.project.name`` picks a Phoenix project)."""
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, endpoint: str | None = None,
                 protocol: str | None = None, capture_content: bool | None = None) -> OtelConfig | None:
        """The configuration the environment asks for, or ``None`` when no endpoint is set (or
        ``TROUPE_OTEL=0``). Arguments that are not ``None`` win over the environment."""
        env = os.environ if environ is None else environ
        if endpoint is None and env.get("TROUPE_OTEL", "").strip().lower() in ("0", "false", "no", "off"):
            return None
        chosen = _protocol(protocol) or _protocol(cls._env_protocol(env)) or "http"
        full = False
        if endpoint is None:
            endpoint = env.get("TROUPE_OTEL_ENDPOINT")
        if not endpoint and env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            endpoint, full = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], True
        if not endpoint:
            endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")  # a base URL: /v1/traces is added (HTTP)
        if not endpoint:
            return None
        if capture_content is None:
            capture_content = env.get("TROUPE_OTEL_CONTENT", "").strip().lower() in _TRUE
        return cls(endpoint=endpoint, endpoint_is_full=full, protocol=chosen, capture_content=capture_content,
                   service_name=env.get("OTEL_SERVICE_NAME") or "troupe")

    @staticmethod
    def _env_protocol(env: Mapping[str, str]) -> str | None:
        return (env.get("TROUPE_OTEL_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL"))

    def traces_url(self) -> str | None:
        """The URL the exporter is given: for HTTP, ``endpoint`` with ``/v1/traces`` added unless it ends
        with it already (or ``endpoint_is_full``)."""
        if self.endpoint is None or self.protocol == "grpc":
            return self.endpoint
        parts = urlsplit(self.endpoint)
        if not parts.scheme or not parts.netloc:
            raise ConfigError(f"OTLP endpoint {self.endpoint!r} is not a URL: write it as http://HOST:PORT")
        base = self.endpoint.rstrip("/")
        return self.endpoint if self.endpoint_is_full or base.endswith(TRACES_PATH) else base + TRACES_PATH


def parse_protocol(value: str | None) -> Protocol | None:
    """``http``, ``http/protobuf`` -> ``http``; ``grpc`` -> ``grpc``; ``None`` stays ``None``."""
    return _protocol(value)


__all__ = ["OtelConfig", "Protocol", "parse_protocol"]
