"""The key store and key text: hashes at rest, 0600, atomic writes, revocation, lookups by others."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from troupe.runtime.access import KeyStore, UnknownKeyError, default_keys_path
from troupe.runtime.access.secret import hash_secret, matches, new_key, parse_key
from troupe.runtime.errors import ConfigError


def test_a_key_is_trp_id_secret_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "home" / "keys.json")
    text, record = store.create("alice", "user", name="laptop")
    parts = parse_key(text)
    assert parts is not None and text.startswith(f"trp_{record.id}_") and parts.id == record.id
    raw = store.path.read_text()
    assert parts.secret not in raw and text not in raw
    assert json.loads(raw)["keys"][0]["hash"] == hash_secret(parts) == record.hash
    assert record.hash.startswith("sha256:") and matches(parts, record.hash)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []  # renamed into place


def test_parse_key_rejects_what_is_not_a_key() -> None:
    text, parts = new_key()
    assert parse_key(text) == parts
    for bad in ["", "trp_", "trp_xyz_secret", "abc_0123456789abcdef_s", "trp_0123456789abcdef_", "trp_0123456789abcde_s"]:
        assert parse_key(bad) is None, bad
    wrong = parts._replace(secret=parts.secret[:-1] + ("A" if parts.secret[-1] != "A" else "B"))
    assert not matches(wrong, hash_secret(parts))


def test_revoke_keeps_the_record_and_another_store_object_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    writer, reader = KeyStore(path), KeyStore(path)  # a server's store and a CLI's, on one file
    _, a = writer.create("alice", "user")
    _, b = writer.create("bob", "viewer")
    assert [k.id for k in reader.records()] == [a.id, b.id] and reader.get(a.id).revoked_at is None
    revoked = writer.revoke(a.id)
    assert revoked.revoked and reader.get(a.id).revoked and not reader.get(b.id).revoked
    assert writer.revoke(a.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(UnknownKeyError, match="no key 'nope'"):
        writer.revoke("nope")


def test_empty_store_is_unconfigured_and_revoked_keys_still_count(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    assert not store.configured() and store.records() == []
    _, rec = store.create("alice", "admin")
    store.revoke(rec.id)
    assert store.configured()


def test_troupe_home_sets_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_HOME", str(tmp_path / "h"))
    assert default_keys_path() == tmp_path / "h" / "keys.json"
    assert KeyStore().path == tmp_path / "h" / "keys.json"


def test_a_corrupt_store_is_a_config_error_and_a_user_is_required(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(ConfigError, match="needs a user"):
        store.create("  ", "user")
    store.path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid"):
        store.records()
