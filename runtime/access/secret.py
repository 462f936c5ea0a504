"""API key text: making one, splitting it, hashing and checking its secret.

A key reads ``trp_<id>_<secret>``: ``id`` is 16 hex digits (public: it names the key in listings
and logs), ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits). Only
``sha256("<id>:<secret>")`` is stored. A plain, fast hash is enough here, unlike for passwords:
slow hashes (bcrypt, scrypt, argon2) exist to make guessing a *low-entropy* secret expensive, and
no amount of guessing reaches a 256-bit random secret, so a slow hash would only add milliseconds
to every request. The id in the hashed text ties a hash to its key. Hashes are compared with
:func:`hmac.compare_digest` (constant time), so response timing tells nothing about a stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final, NamedTuple

PREFIX: Final = "trp"
ID_HEX: Final = 8
"""Bytes of the id (16 hex digits)."""
SECRET_BYTES: Final = 32


class KeyText(NamedTuple):
    id: str
    secret: str


def new_key() -> tuple[str, KeyText]:
    """A fresh key: its full text (shown once) and its parts."""
    parts = KeyText(secrets.token_hex(ID_HEX), secrets.token_urlsafe(SECRET_BYTES))
    return f"{PREFIX}_{parts.id}_{parts.secret}", parts


def parse_key(text: str) -> KeyText | None:
    """The id and secret of ``trp_<id>_<secret>``; None when ``text`` is not shaped like a key."""
    prefix, _, rest = text.strip().partition("_")
    key_id, _, secret = rest.partition("_")  # the id is hex (no '_'); the secret may hold '_'
    if prefix != PREFIX or len(key_id) != 2 * ID_HEX or not secret:
        return None
    try:
        int(key_id, 16)
    except ValueError:
        return None
    return KeyText(key_id, secret)


def hash_secret(parts: KeyText) -> str:
    return "sha256:" + hashlib.sha256(f"{parts.id}:{parts.secret}".encode()).hexdigest()


def matches(parts: KeyText, stored_hash: str) -> bool:
    """Whether ``parts`` hash to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(parts).encode(), stored_hash.encode())


__all__ = ["PREFIX", "KeyText", "hash_secret", "matches", "new_key", "parse_key"]
