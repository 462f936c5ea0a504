"""A typed HTTP client of ``troupe serve`` (used by ``troupe run|chat|sessions|resume --server URL``)."""

from troupe.runtime.client.client import API, KEY_ENV, TroupeClient
from troupe.runtime.client.errors import (
    ApiError,
    ForbiddenError,
    RateLimitedError,
    ServerUnreachableError,
    UnauthorizedError,
)
from troupe.runtime.client.stream import EventStream

__all__ = [
    "API",
    "KEY_ENV",
    "ApiError",
    "EventStream",
    "ForbiddenError",
    "RateLimitedError",
    "ServerUnreachableError",
    "TroupeClient",
    "UnauthorizedError",
]
