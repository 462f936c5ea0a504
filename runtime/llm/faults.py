"""Why a model request failed: every SDK error sorted into a *reason* that decides what happens next.

``rate_limited``, ``timeout``, ``unreachable``, ``interrupted`` (the stream stopped halfway),
``malformed_response`` (a chunk that is not valid JSON) and ``server_error`` are retried with
backoff and then failed over; ``context_length``, ``quota_exceeded``, ``auth`` and ``bad_request``
are not retried (a fallback profile is still tried). Texts are redacted: they end up in events.
"""

from __future__ import annotations

import re
from typing import Final

import openai

from troupe.runtime.config import ModelProfile
from troupe.runtime.redact import redact_text

REASONS: Final = (
    "rate_limited", "timeout", "unreachable", "interrupted", "malformed_response", "server_error",
    "context_length", "quota_exceeded", "auth", "bad_request",
)
"""Why a model request failed (``ProviderError.fields["reason"]``, the ``llm.error`` event's status)."""
RETRIED: Final = frozenset({"rate_limited", "timeout", "unreachable", "interrupted", "malformed_response", "server_error"})
_CONTEXT_LENGTH = re.compile(
    r"context[ _]length|context (?:size|window)|maximum context|too many tokens|prompt is too long|exceed_context",
    re.IGNORECASE,
)


class Fault(Exception):
    """One failed request, sorted: why, whether to retry, and how long the server asked us to wait."""

    def __init__(self, reason: str, error: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.reason in RETRIED


def classify(e: openai.APIError, *, where: str, timeout_s: float, streaming: bool) -> Fault:
    """Sort an SDK error into a reason (see the module docstring), with redacted text; ``where``
    names the model and endpoint."""
    if isinstance(e, openai.APITimeoutError):
        return Fault("timeout", f"timed out after {timeout_s:g}s ({where})")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        if streaming:
            return Fault("interrupted", redact_text(f"connection to {where} lost in the middle of the stream{detail}"))
        return Fault("unreachable", redact_text(f"cannot connect to {where}{detail}"))
    status = e.status_code if isinstance(e, openai.APIStatusError) else None
    code, kind, message = _error_body(e)
    if status is not None:
        text = f"HTTP {status} from {where}: {message}"
    else:  # an error the server sent as an event in the middle of the stream
        text = f"error in the stream from {where}: {message}"
    text = redact_text(text)
    marks = f"{code} {kind}"
    if status in (400, 413, None) and (_CONTEXT_LENGTH.search(marks) or _CONTEXT_LENGTH.search(message)):
        return Fault("context_length", text, status=status)
    if status == 429 or "rate_limit" in marks:
        if "insufficient_quota" in marks:
            return Fault("quota_exceeded", text, status=status)
        return Fault("rate_limited", text, status=status, retry_after=_retry_after(e))
    if status is None or status >= 500:
        return Fault("server_error", text, status=status, retry_after=_retry_after(e))
    if status == 408:
        return Fault("timeout", text, status=status, retry_after=_retry_after(e))
    if status in (401, 403):
        return Fault("auth", text, status=status)
    return Fault("bad_request", text, status=status)


def _error_body(e: openai.APIError) -> tuple[str, str, str]:
    """``(code, type, message)`` from the error body OpenAI-compatible servers send."""
    body = e.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return "", "", str(e.message)[:500]
    message = inner.get("message")
    return (str(inner.get("code") or ""), str(inner.get("type") or ""),
            (message if isinstance(message, str) else str(e.message))[:500])


def _retry_after(e: openai.APIError) -> float | None:
    if not isinstance(e, openai.APIStatusError):
        return None
    headers = e.response.headers
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def backoff(profile: ModelProfile, retry: int, server: float | None) -> float:
    """Retry-After when the server sent it, else ``backoff_s`` doubling; both capped at
    ``max_backoff_s`` (past that, failing over beats waiting)."""
    delay = server if server is not None else profile.backoff_s * (2**retry)
    return min(delay, profile.max_backoff_s)


__all__ = ["REASONS", "RETRIED", "Fault", "backoff", "classify"]
