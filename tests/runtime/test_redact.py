"""Redaction as events see it: ``make_event`` takes a fast path for payloads that hold nothing
secret-looking, and must give the same text as a full walk in every case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from troupe.runtime.events import make_event
from troupe.runtime.redact import REDACTED, may_hold_secret, redact, register_secret


def payload_text(payload: Any) -> str:
    return make_event("message.sent", run_id="r", session_id="s", payload=payload).payload


@pytest.mark.parametrize("payload", [
    {"text": "hello", "n": 3, "nested": [{"a": 1}, ("t", 2)]},
    {"headers": {"Authorization": "Bearer abcdefghijkl"}, "ok": True},
    {"args": {"note": "key is sk-abcdefghijklmnop"}},
    {"deep": {"deeper": {"db_password": "hunter2", "list": ["ghp_abcdefghijk"]}}},
    {"x": object()},
])
def test_fast_path_gives_the_same_text_as_a_full_walk(payload: Any) -> None:
    full = json.dumps(redact(payload), default=str, ensure_ascii=False)
    assert payload_text(payload) == full


def test_clean_text_needs_no_walk_and_secret_text_does() -> None:
    assert not may_hold_secret('{"reply": "both done", "tokens": 12}')
    assert may_hold_secret('{"api_key": "x"}')
    assert may_hold_secret('{"t": "Bearer abcdefghijk"}')


def test_registered_secret_is_redacted_even_when_json_escapes_it() -> None:
    secret = 'quote"in\\secret-0123'
    register_secret(secret)
    text = payload_text({"output": f"the value is {secret}!"})
    assert secret not in json.loads(text)["output"]
    assert REDACTED in json.loads(text)["output"]
