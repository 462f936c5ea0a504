"""What the client raises when the server refuses or fails a request."""

from __future__ import annotations

from troupe.runtime.errors import TroupeError


class ApiError(TroupeError):
    """The server answered ``status`` with ``{"error", "reason"}`` (or FastAPI's ``detail``)."""

    def __init__(self, status: int, error: str, reason: str = "", *, retry_after_s: float | None = None) -> None:
        text = f"HTTP {status} {error}" + (f": {reason}" if reason else "")
        super().__init__(text, status=status, error=error)
        self.status = status
        self.error = error
        self.reason = reason
        self.retry_after_s = retry_after_s


class UnauthorizedError(ApiError):
    """401: no key, or a key the server does not accept (``error`` says which: missing, invalid, revoked)."""


class ForbiddenError(ApiError):
    """403: the key's role is too low, or the session belongs to another user."""


class RateLimitedError(ApiError):
    """429: the key is over its rate limit (``retry_after_s``)."""


class ServerUnreachableError(TroupeError):
    """No answer from the server (wrong URL, server down)."""


def error_for(status: int, error: str, reason: str, retry_after_s: float | None = None) -> ApiError:
    cls = {401: UnauthorizedError, 403: ForbiddenError, 429: RateLimitedError}.get(status, ApiError)
    return cls(status, error, reason, retry_after_s=retry_after_s)


__all__ = ["ApiError", "ForbiddenError", "RateLimitedError", "ServerUnreachableError", "UnauthorizedError", "error_for"]
