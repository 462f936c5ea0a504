"""Keep secrets out of events: API keys and auth headers never reach the lake."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|auth[_-]?token|secret|password|bearer|x-api-key|access[_-]?token)",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|ghp_[A-Za-z0-9]{8,}|xox[bp]-[A-Za-z0-9\-]{8,})"
)
REDACTED = "[redacted]"

_extra_values: set[str] = set()
_extra_forms: set[str] = set()
"""Each extra value as it appears in JSON text (escaped), for :func:`may_hold_secret`."""


def is_secret_name(name: str) -> bool:
    """A key or variable name that holds a secret (``OPENAI_API_KEY``, ``Authorization``, ``DB_PASSWORD``)."""
    return bool(_SECRET_KEYS.search(name)) or name.upper().endswith(("_KEY", "_TOKEN"))


def register_secret(value: str | None) -> None:
    """Remember a secret value (for example an API key read from the environment) to scrub."""
    if value and len(value) >= 6:
        _extra_values.add(value)
        _extra_forms.add(value)
        _extra_forms.add(json.dumps(value, ensure_ascii=False)[1:-1])


_VALUE_HINTS = ("sk-", "Bearer", "bearer", "ghp_", "xox")
"""Every pattern of ``_SECRET_VALUES`` contains one of these: text without any needs no regex."""


def redact_text(text: str) -> str:
    if any(h in text for h in _VALUE_HINTS):
        text = _SECRET_VALUES.sub(REDACTED, text)
    for value in _extra_values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key))


def may_hold_secret(text: str) -> bool:
    """False when ``text`` (a JSON rendering of a value) certainly holds nothing :func:`redact`
    would change: no secret-looking key or value and no registered secret anywhere in it. One
    regex pass over the text instead of a walk of the value: most events take this path."""
    if _SECRET_KEYS.search(text) or any(h in text for h in _VALUE_HINTS):
        return True
    return any(form in text for form in _extra_forms)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and values replaced (runs on every event: keys
    repeat, so their verdicts are cached; text is only searched when it could hold a secret)."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


__all__ = ["REDACTED", "may_hold_secret", "redact", "redact_text", "register_secret"]
