"""The payload of a refused request: who asked, for what, and why it was refused."""

from __future__ import annotations

from typing import Final, Literal

from troupe.runtime.events.payload import Payload

ACCESS_RUN_ID: Final = "access"
"""The ``run_id`` of every ``access.denied`` row: the lake keeps refusals in a partition of their own
(per day), never in a session run's partition."""

ACCESS_SESSION_ID: Final = "-"
"""The ``session_id`` of every ``access.denied`` row. The session a refusal concerns is the payload's
``session``, not the row's ``session_id``: a session's rows (its timeline, its event stream and the
stream positions resumed with ``Last-Event-ID``, its run id) are what it did, and a stranger's refused
request must not add to or renumber them. Audit a session with
``json_extract_string(payload, '$.session') = 's-...'``."""


class AccessDeniedPayload(Payload):
    """A request to a network interface was refused (401, 403 or 429; ``status`` ``denied``).

    ``run_id`` is ``access``, ``session_id`` is ``-`` (the session concerned is ``session``);
    ``agent`` is the interface (``http``, ``mcp``)."""

    event_type: Literal["access.denied"] = "access.denied"
    status_code: int
    """The HTTP status answered: 401 (no valid key), 403 (not allowed), 429 (rate limited)."""
    error: str
    """Why, as a code: ``missing_key``, ``invalid_key``, ``revoked_key``, ``keys_required``,
    ``role_too_low``, ``other_user_session``, ``rate_limited``."""
    reason: str
    """Why, in a sentence (the same text the client was answered)."""
    method: str
    """The request's HTTP method."""
    path: str
    """The request's path (no query string)."""
    user: str | None = None
    """The key's user, when a valid key was presented."""
    role: str | None = None
    """The key's role, when a valid key was presented."""
    key_id: str | None = None
    """The presented key's public id, when it was shaped like a key (never its secret)."""
    client: str | None = None
    """The client's address."""
    session: str | None = None
    """The session the request concerned (a session route, an approval of it), if any."""


__all__ = ["ACCESS_RUN_ID", "ACCESS_SESSION_ID", "AccessDeniedPayload"]
