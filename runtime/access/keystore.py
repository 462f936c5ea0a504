"""The key store: ``$TROUPE_HOME/keys.json`` (default ``~/.troupe/keys.json``), only hashes at rest.

Writes are atomic (a temporary file in the same folder, fsynced, then renamed over the old one),
made under an exclusive lock (so two ``troupe keys`` commands cannot lose each other's key), and
the file is created with mode 0600 in a folder of mode 0700. Readers re-read the file when it
changes (its size, mtime or inode), so a key revoked with ``troupe keys revoke`` is refused by a
server that is already running, at the cost of one ``stat`` per request.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from troupe.runtime.access.models import KeyFile, KeyRecord, RateLimit, Role
from troupe.runtime.access.secret import hash_secret, new_key
from troupe.runtime.errors import ConfigError

KEYS_FILE = "keys.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


def troupe_home() -> Path:
    """``$TROUPE_HOME``, else ``~/.troupe``."""
    return Path(os.environ.get("TROUPE_HOME") or Path.home() / ".troupe").expanduser()


def default_keys_path() -> Path:
    return troupe_home() / KEYS_FILE


class UnknownKeyError(ConfigError):
    """``troupe keys revoke`` of an id the store does not hold."""


class KeyStore:
    """Create, list, revoke and look up API keys in one JSON file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_keys_path()
        self._cache: tuple[tuple[int, int, int], KeyFile] | None = None
        self._lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------------

    def load(self) -> KeyFile:
        """The store as it is on disk now (re-read only when the file changed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return KeyFile()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
        try:
            data = KeyFile.model_validate_json(self.path.read_bytes())
        except ValueError as e:
            raise ConfigError(f"the key store {self.path} is not valid ({e}); fix or remove it") from None
        with self._lock:
            self._cache = (stamp, data)
        return data

    def records(self) -> list[KeyRecord]:
        return list(self.load().keys)

    def configured(self) -> bool:
        """Whether any key was ever created (revoked ones count: a store of revoked keys stays locked)."""
        return bool(self.load().keys)

    def get(self, key_id: str) -> KeyRecord | None:
        return next((k for k in self.load().keys if k.id == key_id), None)

    # --- writing -------------------------------------------------------------------------------

    def create(self, user: str, role: Role, *, name: str = "", rate_limit: RateLimit | None = None) -> tuple[str, KeyRecord]:
        """A new key for ``user`` with ``role``: its full text (shown once, never stored) and its record."""
        if not user.strip():
            raise ConfigError("a key needs a user (--user NAME)")
        text, parts = new_key()
        record = KeyRecord(id=parts.id, user=user.strip(), role=role, name=name, hash=hash_secret(parts),
                           created_at=datetime.now(UTC), rate_limit=rate_limit)
        with self._locked() as current:
            current.keys.append(record)
            self._write(current)
        return text, record

    def revoke(self, key_id: str) -> KeyRecord:
        """Mark a key revoked (kept, so it is refused as revoked rather than unknown)."""
        with self._locked() as current:
            for i, record in enumerate(current.keys):
                if record.id == key_id:
                    if record.revoked:
                        return record
                    current.keys[i] = record.model_copy(update={"revoked_at": datetime.now(UTC)})
                    self._write(current)
                    return current.keys[i]
        known = ", ".join(k.id for k in self.records()) or "none"
        raise UnknownKeyError(f"no key {key_id!r} in {self.path} (keys: {known}); see troupe keys list", key_id=key_id)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[KeyFile]:
        """The store read under an exclusive lock held until the block ends (read-modify-write)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None
            yield self.load().model_copy(deep=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, data: KeyFile) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # O_CREAT's mode does not apply to a file left over from a crash
            os.write(fd, data.model_dump_json(indent=2).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._cache = None


__all__ = ["KEYS_FILE", "KeyStore", "UnknownKeyError", "default_keys_path", "troupe_home"]
