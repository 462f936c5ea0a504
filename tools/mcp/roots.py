"""The roots Troupe offers an MCP server (``roots/list``): the calling session's workspace, when the call
has one, and the server's declared ``roots`` (paths or ``file://`` URIs). A connection remembers what it
last answered; when a call brings a workspace the server has not been told about, the connection sends
``notifications/roots/list_changed`` so the server asks again."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mcp import types as mt

from troupe.runtime.config import McpServerConfig


def file_uri(path_or_uri: str) -> str:
    """A ``file://`` URI for a path (``~`` expanded, made absolute); a URI is kept as it is."""
    if "://" in path_or_uri:
        return path_or_uri
    return Path(path_or_uri).expanduser().resolve().as_uri()


def roots_for(cfg: McpServerConfig, workspaces: Iterable[str] = ()) -> list[mt.Root]:
    """Workspaces first (named ``workspace``), then the config's roots; each URI once."""
    roots: list[mt.Root] = []
    seen: set[str] = set()
    named = [(w, "workspace") for w in workspaces if w] + [(r, None) for r in cfg.roots]
    for value, name in named:
        uri = file_uri(value)
        if uri not in seen:
            seen.add(uri)
            roots.append(mt.Root(uri=uri, name=name or Path(value).name or uri))
    return roots


__all__ = ["file_uri", "roots_for"]
