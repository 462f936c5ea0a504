"""Where an MCP server's OAuth tokens and its dynamically registered client live: one JSON file per server
and client under ``$TROUPE_HOME/mcp-tokens/`` (default ``~/.troupe/mcp-tokens``), the folder 0700 and each
file 0600, written atomically. Never the lake, never an event: every token and client secret read or written
here is registered for redaction, so a log line or an error that quotes one shows ``[redacted]``.

A stored token keeps the time it was saved, so its ``expires_in`` still counts down after a restart (the SDK
reckons expiry from ``expires_in`` when it loads a token).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import BaseModel, ValidationError

from troupe.runtime.redact import register_secret

DIR_MODE = 0o700
FILE_MODE = 0o600
FOLDER = "mcp-tokens"


def default_root() -> Path:
    """``$TROUPE_HOME/mcp-tokens``, else ``~/.troupe/mcp-tokens``."""
    return Path(os.environ.get("TROUPE_HOME") or Path.home() / ".troupe").expanduser() / FOLDER


class StoredAuth(BaseModel):
    """One file of the store (what crosses to disk)."""

    server_url: str
    tokens: OAuthToken | None = None
    tokens_saved_at: float | None = None
    client_info: OAuthClientInformationFull | None = None


def _register(tokens: OAuthToken | None, client: OAuthClientInformationFull | None) -> None:
    if tokens is not None:
        register_secret(tokens.access_token)
        register_secret(tokens.refresh_token)
    if client is not None:
        register_secret(client.client_secret)


def store_key(server_url: str, identity: str) -> str:
    """A file name for one server URL and one client identity: readable host, hashed rest."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", server_url.split("://", 1)[-1].split("/", 1)[0])[:60]
    digest = hashlib.sha256(f"{server_url}\n{identity}".encode()).hexdigest()[:16]
    return f"{host}-{digest}"


class FileTokenStorage:
    """The SDK's ``TokenStorage`` over one file of the store.

    ``fixed_client`` (a pre-registered client, whose secret comes from the team's secrets) is answered from
    memory and never written; a client the flow registered itself is kept with the tokens.
    """

    def __init__(self, path: Path, server_url: str, *, fixed_client: OAuthClientInformationFull | None = None) -> None:
        self.path = path
        self.server_url = server_url
        self.fixed_client = fixed_client
        _register(None, fixed_client)

    def load(self) -> StoredAuth:
        try:
            stored = StoredAuth.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return StoredAuth(server_url=self.server_url)
        except (OSError, ValidationError, ValueError):
            return StoredAuth(server_url=self.server_url)  # unreadable or from another version: start over
        if stored.server_url != self.server_url:
            return StoredAuth(server_url=self.server_url)
        _register(stored.tokens, stored.client_info)
        return stored

    def _save(self, stored: StoredAuth) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self.path.parent, DIR_MODE)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(stored.model_dump_json(exclude_none=True))
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # ---- the SDK's TokenStorage ----
    async def get_tokens(self) -> OAuthToken | None:
        stored = self.load()
        tokens = stored.tokens
        if tokens is None or tokens.expires_in is None or stored.tokens_saved_at is None:
            return tokens
        left = int(tokens.expires_in - (time.time() - stored.tokens_saved_at))
        return tokens.model_copy(update={"expires_in": max(left, 0)})

    async def set_tokens(self, tokens: OAuthToken) -> None:
        _register(tokens, None)
        stored = self.load()
        stored.tokens, stored.tokens_saved_at = tokens, time.time()
        self._save(stored)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        if self.fixed_client is not None:
            return self.fixed_client
        return self.load().client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        _register(None, client_info)
        if self.fixed_client is not None and client_info.client_id == self.fixed_client.client_id:
            return  # the configured client: its secret stays where the team's secrets say
        stored = self.load()
        stored.client_info = client_info
        self._save(stored)

    def clear(self) -> None:
        """Forget this server's tokens and registration (``troupe mcp logout``-style)."""
        self.path.unlink(missing_ok=True)


class TokenStore:
    """The folder of :class:`FileTokenStorage` files."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_root()

    def storage(self, server_url: str, identity: str, *,
                fixed_client: OAuthClientInformationFull | None = None) -> FileTokenStorage:
        return FileTokenStorage(self.root / f"{store_key(server_url, identity)}.json", server_url,
                                fixed_client=fixed_client)

    def files(self) -> list[Path]:
        return sorted(self.root.glob("*.json")) if self.root.is_dir() else []

    def servers(self) -> list[str]:
        """The server URLs with something stored (for a listing; never the tokens)."""
        out: list[str] = []
        for path in self.files():
            try:
                out.append(json.loads(path.read_text(encoding="utf-8"))["server_url"])
            except (OSError, ValueError, KeyError):
                continue
        return out


__all__ = ["FileTokenStorage", "StoredAuth", "TokenStore", "default_root", "store_key"]
