"""The access decisions every network interface makes, without any web framework.

``authenticate`` turns an ``Authorization`` header into a :class:`Principal` or refuses (401; 429
when the key is over its rate limit); ``require_role`` and ``require_owner`` refuse with 403. A
refusal is an :class:`AccessDenied` carrying the status, a code and a sentence; the interface
answers it and records it (:mod:`troupe.runtime.access.denials`).

Keyless mode: while the key store holds no key at all, a request from a loopback address is the
local admin (:data:`LOCAL_ADMIN`), and any other request is refused, so a server that somehow
listens beyond loopback without keys still answers nobody else. Revoked keys count as keys: revoking
the last key does not reopen the server.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from troupe.runtime.access.keystore import KeyStore
from troupe.runtime.access.models import LOCAL_ADMIN, KeyRecord, Principal, Role
from troupe.runtime.access.ratelimit import RateLimiter
from troupe.runtime.access.secret import matches, parse_key
from troupe.runtime.errors import ConfigError, TroupeError

SCHEME: Final = "bearer"


class AccessDenied(TroupeError):
    """A refused request: ``status_code`` (401, 403, 429), ``error`` (a code), ``reason`` (a sentence)."""

    def __init__(self, status_code: int, error: str, reason: str, *, principal: Principal | None = None,
                 key_id: str | None = None, retry_after_s: float | None = None, session_id: str | None = None) -> None:
        super().__init__(reason, status_code=status_code, error=error)
        self.status_code = status_code
        self.error = error
        self.reason = reason
        self.principal = principal
        self.key_id = key_id if key_id is not None else (principal.key_id if principal else None)
        self.retry_after_s = retry_after_s
        self.session_id = session_id

    def body(self) -> dict[str, str]:
        """The JSON body every refusal is answered with."""
        return {"error": self.error, "reason": self.reason}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address; an empty host (every interface) is not."""
    if not host:
        return False
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_hint(store: KeyStore) -> str:
    return (f"create one with: troupe keys create --user NAME --role admin (stored hashed in {store.path}; "
            "the server then asks every request for it)")


def check_bind(host: str, store: KeyStore, *, what: str = "the server") -> None:
    """Refuse to listen beyond loopback while no API key exists (a ConfigError saying how to make one)."""
    if is_loopback(host) or store.configured():
        return
    raise ConfigError(f"{what} will not listen on {host or 'every interface'} without API keys: anyone who could "
                      f"reach it could run teams. Listen on 127.0.0.1, or {key_hint(store)}", host=host)


class AccessControl:
    """Keys, roles, ownership and rate limits: the decisions, for any interface."""

    def __init__(self, store: KeyStore, *, limiter: RateLimiter | None = None) -> None:
        self.store = store
        self.limiter = limiter or RateLimiter()

    def authenticate(self, authorization: str | None, *, client: str | None = None) -> Principal:
        """The principal of a request with this ``Authorization`` header value, from ``client``'s address."""
        if not self.store.configured():
            if authorization:
                raise AccessDenied(401, "invalid_key", f"this server has no API keys, so the key presented is not one of "
                                   f"its keys; send no key from loopback, or {key_hint(self.store)}")
            if not is_loopback(client):
                raise AccessDenied(401, "keys_required", f"this server has no API keys and answers only loopback "
                                   f"clients; {key_hint(self.store)}")
            return self._limited(LOCAL_ADMIN, None)
        if not authorization:
            raise AccessDenied(401, "missing_key", "this server requires an API key: send 'Authorization: Bearer "
                               "trp_...' (troupe keys create makes one)")
        scheme, _, text = authorization.strip().partition(" ")
        if scheme.lower() != SCHEME or not text.strip():
            raise AccessDenied(401, "invalid_key", "the Authorization header must read 'Bearer trp_<id>_<secret>'")
        parts = parse_key(text)
        if parts is None:
            raise AccessDenied(401, "invalid_key", "the key presented is not a Troupe API key (trp_<id>_<secret>)")
        record = self.store.get(parts.id)
        if record is None or not matches(parts, record.hash):
            raise AccessDenied(401, "invalid_key", f"key {parts.id} is not valid on this server", key_id=parts.id)
        if record.revoked_at is not None:
            raise AccessDenied(401, "revoked_key", f"key {parts.id} was revoked at {record.revoked_at.isoformat()}",
                               key_id=parts.id)
        return self._limited(Principal(user=record.user, role=record.role, key_id=record.id), record)

    def _limited(self, principal: Principal, record: KeyRecord | None) -> Principal:
        limit = record.rate_limit if record is not None else None
        wait = self.limiter.take(principal.key_id or principal.user, limit)
        if wait > 0:
            raise AccessDenied(429, "rate_limited", f"key {principal.key_id or '(none)'} is over its rate limit; "
                               f"retry in {wait:.2f}s", principal=principal, retry_after_s=wait)
        return principal

    @staticmethod
    def require_role(principal: Principal, needed: Role, *, action: str = "this") -> Principal:
        if not principal.at_least(needed):
            raise AccessDenied(403, "role_too_low", f"{action} needs role {needed}; the key of user {principal.user} "
                               f"has role {principal.role}", principal=principal)
        return principal

    @staticmethod
    def require_owner(principal: Principal, session_id: str, owner_user: str | None) -> Principal:
        """403 unless ``principal`` may see session ``session_id`` of ``owner_user`` (says nothing else about it)."""
        if not principal.can_see(owner_user):
            raise AccessDenied(403, "other_user_session", f"session {session_id} belongs to another user",
                               principal=principal, session_id=session_id)
        return principal


__all__ = ["AccessControl", "AccessDenied", "check_bind", "is_loopback", "key_hint"]
