"""The vocabulary of access control: roles, the principal a request acts as, a stored key, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "user", "admin"]
"""``viewer`` reads its own sessions; ``user`` also creates and drives them; ``admin`` sees and touches all."""

ROLES: Final[tuple[Role, ...]] = ("viewer", "user", "admin")
"""Lowest first: a role may do everything the roles before it may."""

LOCAL_USER: Final = "local"
"""The user of every request to a keyless server on loopback."""


def role_at_least(role: Role, needed: Role) -> bool:
    """Whether ``role`` ranks at or above ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


class Principal(BaseModel):
    """Who a request acts as: the key's user and role (``key_id`` is None for the keyless local admin)."""

    model_config = ConfigDict(frozen=True)

    user: str
    """The user the key maps to; sessions this principal creates belong to this user."""
    role: Role
    """What the principal may do (see :data:`Role`)."""
    key_id: str | None = None
    """The key used (its public id, never the secret); None when no key is configured (loopback)."""

    def at_least(self, needed: Role) -> bool:
        return role_at_least(self.role, needed)

    def can_see(self, owner_user: str | None) -> bool:
        """An admin sees every session; anyone else only sessions whose owner is their user."""
        return self.role == "admin" or owner_user == self.user


LOCAL_ADMIN: Final = Principal(user=LOCAL_USER, role="admin")
"""Every request's principal when the key store is empty and the request comes over loopback."""


class RateLimit(BaseModel):
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    model_config = ConfigDict(frozen=True)

    per_second: float = Field(default=10.0, gt=0)
    """Sustained requests per second allowed per key."""
    burst: int = Field(default=60, ge=1)
    """Requests a key may make at once before it is held to ``per_second``."""


class KeyRecord(BaseModel):
    """One API key as stored: its public id, its owner and role, and a hash of its secret (never the secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    """The key's public id (the ``<id>`` in ``trp_<id>_<secret>``; safe to log)."""
    user: str
    """The user the key maps to."""
    role: Role
    """The role granted by the key."""
    name: str = ""
    """A label for people (``laptop``, ``ci``)."""
    hash: str
    """``sha256:<hex>`` of ``<id>:<secret>`` (see :mod:`troupe.runtime.access.secret` for why sha256 suffices)."""
    created_at: datetime
    """When it was created (UTC)."""
    revoked_at: datetime | None = None
    """When it was revoked (UTC); a revoked key is refused with 401 ``revoked_key``."""
    rate_limit: RateLimit | None = None
    """This key's own limit; None takes the server's default."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class KeyFile(BaseModel):
    """The key store on disk (``$TROUPE_HOME/keys.json``)."""

    version: int = 1
    """Schema version of the file."""
    keys: list[KeyRecord] = Field(default_factory=list)
    """Every key ever created, revoked ones included (so a revoked key says 'revoked', not 'unknown')."""


__all__ = ["LOCAL_ADMIN", "LOCAL_USER", "ROLES", "KeyFile", "KeyRecord", "Principal", "RateLimit", "Role",
           "role_at_least"]
