"""PLACEHOLDER (server helper E) until the access helper (F) lands theirs: every request is the local admin.

F replaces this file with the real dependencies (API keys, roles, rate limits); the routes already
depend on these three names, so access control needs nothing else from the routes.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Request
from pydantic import BaseModel

Role = Literal["viewer", "user", "admin"]


class Principal(BaseModel):
    user: str
    role: Role
    key_id: str | None = None


async def principal(request: Request) -> Principal:
    """Who is asking (placeholder: the local admin)."""
    return Principal(user="local", role="admin")


def require_role(role: Role):  # type: ignore[no-untyped-def]
    """A dependency that answers 403 below ``role`` (placeholder: everyone is admin)."""

    async def check(p: Principal = Depends(principal)) -> Principal:
        return p

    return check


def can_see(p: Principal, owner: str | None) -> bool:
    """Whether ``p`` may see a session owned by ``owner`` (admin sees all)."""
    return p.role == "admin" or owner == p.user


__all__ = ["Principal", "can_see", "principal", "require_role"]
