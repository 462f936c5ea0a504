"""From a server's config to what its transport needs: the stdio child's parameters, the HTTP
headers, and the key its connection is known by."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from mcp import StdioServerParameters

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ConfigError
from troupe.runtime.secrets import expand as expand_secrets

EXTRA_INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
"""Inherited by stdio servers on top of the SDK's minimal set (HOME, LOGNAME, PATH, SHELL, TERM, USER):
locale and temp dir, never the caller's secrets."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(value: str, *, where: str, server: str) -> str:
    """``${VAR}`` (or ``${VAR:-default}``) from this process's environment; a missing variable
    without a default is a config error, not an empty string (an empty token fails later, obscurely)."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} (used in {where} of MCP server {server!r}) is not set; "
            f"export it or write ${{{name}:-default}}",
            server=server, variable=name,
        )

    return _VAR.sub(sub, value)


SESSION_VARIABLES = ("session_id", "sample_dir", "case_id", "sample")
"""What a ``scope: session`` server's config may name besides the process environment."""


def session_config(server: str, cfg: McpServerConfig, values: Mapping[str, str]) -> McpServerConfig:
    """``cfg`` for one session: ``${session_id}``, ``${sample_dir}``, ``${case_id}`` and ``${sample}``
    expanded in its args, env, cwd, url and headers (from ``values``). In args, cwd and url any other
    ``${VAR}`` comes from this process's environment (or its default; neither is a config error); env and
    headers keep theirs, expanded where the server starts, as for every server."""

    def session_only(value: str) -> str:
        return _VAR.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), value)

    def full(value: str, where: str) -> str:
        return expand_vars(session_only(value), where=where, server=server)

    return cfg.model_copy(update={
        "args": [full(a, f"args[{i}]") for i, a in enumerate(cfg.args)],
        "env": {k: session_only(v) for k, v in cfg.env.items()},
        "cwd": full(cfg.cwd, "cwd") if cfg.cwd else cfg.cwd,
        "url": full(cfg.url, "url") if cfg.url else cfg.url,
        "headers": {k: session_only(v) for k, v in cfg.headers.items()},
    })


def config_hash(cfg: McpServerConfig) -> str:
    """Stable hash of a server config: a changed config is a different connection."""
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12]


def connection_key(server: str, cfg: McpServerConfig, session_id: str = "") -> str:
    """A node-scoped server's connection is known by name and config; a session-scoped one also by its session."""
    key = f"{server}@{config_hash(cfg)}"
    return f"{key}#{session_id}" if cfg.scope == "session" else key


def _secrets(value: str, cfg: McpServerConfig, *, where: str, server: str) -> str:
    """``${secret:NAME}`` read here, on the node that starts the server (docs/secrets.md)."""
    return expand_secrets(value, cfg.secrets, where=f"{where} of MCP server {server!r}")


def stdio_parameters(server: str, cfg: McpServerConfig) -> StdioServerParameters:
    assert cfg.command
    env = {k: os.environ[k] for k in EXTRA_INHERITED_ENV if k in os.environ}
    env.update({k: _secrets(expand_vars(v, where=f"env.{k}", server=server), cfg, where=f"env.{k}", server=server)
                for k, v in cfg.env.items()})
    args = [_secrets(a, cfg, where=f"args[{i}]", server=server) for i, a in enumerate(cfg.args)]
    cwd = os.path.expanduser(cfg.cwd) if cfg.cwd else None
    return StdioServerParameters(command=cfg.command, args=args, env=env, cwd=cwd)


def http_headers(server: str, cfg: McpServerConfig) -> dict[str, str]:
    return {k: _secrets(expand_vars(v, where=f"headers.{k}", server=server), cfg, where=f"headers.{k}", server=server)
            for k, v in cfg.headers.items()}


def safe_url(url: str | None) -> str:
    """The URL without credentials or query string (they may carry tokens; the message is model-visible)."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


__all__ = ["EXTRA_INHERITED_ENV", "SESSION_VARIABLES", "config_hash", "connection_key", "expand_vars", "http_headers", "safe_url",
           "session_config", "stdio_parameters"]
