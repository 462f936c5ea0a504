"""What a server is configured with: flags of ``troupe serve``, or the environment for ``serve run``.

``troupe.runtime.server.deploy:app`` (``serve run`` / ``serve deploy``) reads its settings from
``$TROUPE_SERVE_CONFIG`` (a JSON or YAML file of these fields) and ``$TROUPE_SERVE_<FIELD>`` variables
(``TROUPE_SERVE_TEAMS=a:b``, ``TROUPE_SERVE_NUM_REPLICAS=2``, ...), variables winning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

ENV_PREFIX = "TROUPE_SERVE_"
CONFIG_ENV = "TROUPE_SERVE_CONFIG"


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8321
    lake: str | None = None
    """The event lake (``None``: ``$TROUPE_LAKE`` or ``./.troupe/lake``)."""
    checkpoints: bool | str = True
    """Checkpoint store for resumable sessions (True: ``<lake>/checkpoints``)."""
    teams: list[str] = Field(default_factory=list)
    """Folders (or team files' folders) teams may be run from (default: the working directory)."""
    local: bool = False
    """Run sessions in the server's process (no Ray)."""
    address: str | None = None
    """Ray address to attach to (``None``: a running one, else a new local one)."""
    placement: Literal["dedicated", "packed"] | None = None
    num_replicas: int = 1
    autoscaling: dict[str, Any] | None = None
    """Ray Serve ``autoscaling_config`` (``min_replicas``, ``max_replicas``, ...); replaces ``num_replicas``."""
    replica_cpus: float = 0.0
    """CPUs each Serve replica reserves (the sessions' actors reserve their own)."""
    keys_path: str | None = None
    """The API key store (``None``: ``$TROUPE_HOME/keys.json``); the access layer reads it."""
    max_sessions: int = 256
    """Sessions one server process holds open at once."""
    stream_gap_s: float = 2.0
    """How long a live stream holds events back while an earlier stream position has not come (then
    it reads the missing ones from the lake; see docs/server.md, "Stream positions")."""
    heartbeat_s: float = 15.0
    registry: str | None = None
    """Name of the shared session directory (a Ray actor) behind Serve; ``None``: this process only."""
    app_name: str = "troupe"
    route_prefix: str = "/"

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerSettings:
        data: dict[str, Any] = {}
        config = os.environ.get(CONFIG_ENV)
        if config:
            text = Path(config).read_text()
            data.update((json.loads(text) if config.endswith(".json") else yaml.safe_load(text)) or {})
        for name, field in cls.model_fields.items():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            if name == "teams":
                data[name] = [p for p in raw.split(os.pathsep) if p]
            elif name == "autoscaling":
                data[name] = json.loads(raw)
            elif field.annotation is bool or name in ("local",):
                data[name] = raw.lower() in ("1", "true", "yes", "on")
            else:
                data[name] = raw
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` in another process (a Serve replica) give these settings."""
        return {CONFIG_ENV + "_JSON": self.model_dump_json()}


def settings_from_json_env() -> ServerSettings | None:
    raw = os.environ.get(CONFIG_ENV + "_JSON")
    return ServerSettings.model_validate_json(raw) if raw else None


__all__ = ["CONFIG_ENV", "ENV_PREFIX", "ServerSettings", "settings_from_json_env"]
