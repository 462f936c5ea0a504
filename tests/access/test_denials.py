"""Refusals become access.denied events, written in batches to whatever writer the interface gives."""

from __future__ import annotations

import time
from collections.abc import Sequence

from troupe.runtime.access import AccessDenied, DenialLog, Principal, denial_event
from troupe.runtime.events import AccessDeniedPayload, Event


def test_denial_event_names_the_session_concerned_and_never_the_secret() -> None:
    d = AccessDenied(403, "other_user_session", "session s-9 belongs to another user",
                     principal=Principal(user="bob", role="user", key_id="0123456789abcdef"), session_id="s-9")
    e = denial_event(d, method="GET", path="/api/v1/sessions/s-9", client="127.0.0.1")
    assert (e.type, e.run_id, e.session_id, e.agent, e.status) == ("access.denied", "access", "-", "http", "denied")
    assert e.typed == AccessDeniedPayload(status_code=403, error="other_user_session",
                                          reason="session s-9 belongs to another user", method="GET",
                                          path="/api/v1/sessions/s-9", user="bob", role="user",
                                          key_id="0123456789abcdef", client="127.0.0.1", session="s-9")
    none = denial_event(AccessDenied(401, "missing_key", "no key"), method="POST", path="/api/v1/sessions")
    assert none.session_id == "-" and none.data["user"] is None and none.data["session"] is None


def test_denial_log_batches_and_keeps_events_when_the_writer_fails() -> None:
    batches: list[list[Event]] = []
    fail = [True]

    def write(events: Sequence[Event]) -> None:
        if fail[0]:
            raise OSError("lake unreachable")
        batches.append(list(events))

    log = DenialLog(write, interval_s=0)
    event = denial_event(AccessDenied(401, "missing_key", "no key"), method="GET", path="/x")
    log.record(event)  # the writer fails: kept
    fail[0] = False
    log.record(event)
    assert [len(b) for b in batches] == [2]
    timed = DenialLog(write, interval_s=0.05)
    for _ in range(5):
        timed.record(event)
    deadline = time.monotonic() + 2
    while len(batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in batches] == [2, 5]
    timed.record(event)
    timed.close()
    assert [len(b) for b in batches] == [2, 5, 1]
