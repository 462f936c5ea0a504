"""Users and access: API keys (hashed at rest), roles, per-key rate limits, and the decisions every
network interface of Troupe makes with them (``troupe serve``, ``troupe mcp serve --http``).

Plain Python (no web framework): the server's FastAPI dependencies (:mod:`troupe.runtime.server.auth`)
and the MCP server's middleware call :class:`AccessControl` and record each :class:`AccessDenied`
as an ``access.denied`` event (:class:`DenialLog`).
"""

from troupe.runtime.access.denials import DenialLog, denial_event
from troupe.runtime.access.guard import AccessControl, AccessDenied, check_bind, is_loopback
from troupe.runtime.access.keystore import KeyStore, UnknownKeyError, default_keys_path, troupe_home
from troupe.runtime.access.models import LOCAL_ADMIN, ROLES, KeyRecord, Principal, RateLimit, Role, role_at_least
from troupe.runtime.access.ratelimit import RateLimiter, retry_after_header

__all__ = [
    "LOCAL_ADMIN",
    "ROLES",
    "AccessControl",
    "AccessDenied",
    "DenialLog",
    "KeyRecord",
    "KeyStore",
    "Principal",
    "RateLimit",
    "RateLimiter",
    "Role",
    "UnknownKeyError",
    "check_bind",
    "default_keys_path",
    "denial_event",
    "is_loopback",
    "retry_after_header",
    "role_at_least",
    "troupe_home",
]
