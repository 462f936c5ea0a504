"""Unit tests for the blackboard core: versions, CAS, TTL, history, subscriptions, snapshots."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.cores import SID, START, Recorder
from troupe.runtime.clock import FakeClock
from troupe.runtime.errors import ModelVisibleError, TroupeError, VersionConflictError
from troupe.runtime.ids import AgentId
from troupe.runtime.messages import MessageKind
from troupe.runtime.session.blackboard import (
    Blackboard,
    BlackboardEntry,
    EntryKind,
    InvalidKeyError,
    InvalidValueError,
    Provenance,
    ensure_json,
    json_preview,
)


@pytest.fixture
def board(rec: Recorder, clock: FakeClock) -> Blackboard:
    return Blackboard(SID, emit=rec.emit, notify=rec.notify, clock=clock)


# --- put / get -------------------------------------------------------------------------------
def test_put_then_get_returns_the_entry_and_emits_one_put_event(board: Blackboard, rec: Recorder) -> None:
    prov = Provenance(message_id="m-1", tool_call_id="call_1")
    entry = board.put("plan", {"steps": [1, 2]}, author="lead", kind="decision", provenance=prov)

    assert entry == BlackboardEntry(
        key="plan",
        value={"steps": [1, 2]},
        version=1,
        author=AgentId("lead"),
        provenance=prov,
        kind=EntryKind.DECISION,
        ts=START,
        ttl_s=None,
        expires_at=None,
    )
    assert board.get("plan") == entry
    assert rec.events == [
        (
            "blackboard.put",
            {
                "key": "plan",
                "version": 1,
                "kind": "decision",
                "author": "lead",
                "value": {"steps": [1, 2]},
                "value_truncated": False,
                "ttl_s": None,
                "provenance": {"message_id": "m-1", "tool_call_id": "call_1", "event_id": None},
                "v": 2,
            },
            {"agent": "lead", "status": "ok"},
        )
    ]


def test_versions_count_per_key(board: Blackboard) -> None:
    assert [board.put("a", i, author="w").version for i in range(3)] == [1, 2, 3]
    assert board.put("b", "x", author="w").version == 1
    assert board.get("a").value == 2  # type: ignore[union-attr]


def test_get_of_unknown_key_is_none(board: Blackboard, rec: Recorder) -> None:
    assert board.get("nothing/here") is None
    assert rec.events == []


def test_stored_value_is_a_copy_of_what_was_written(board: Blackboard) -> None:
    value = {"items": [1, 2]}
    board.put("k", value, author="w")
    value["items"].append(3)
    assert board.get("k").value == {"items": [1, 2]}  # type: ignore[union-attr]


def test_provenance_can_be_given_as_a_dict(board: Blackboard) -> None:
    entry = board.put("k", 1, author="w", provenance={"event_id": "e1"})
    assert entry.provenance == Provenance(event_id="e1")


def test_unknown_kind_is_refused_with_the_valid_kinds(board: Blackboard) -> None:
    with pytest.raises(InvalidValueError, match="fact, artifact, decision"):
        board.put("k", 1, author="w", kind="opinion")
    assert board.history("k") == []


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_ttl_is_refused(board: Blackboard, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl_s must be a positive number"):
        board.put("k", 1, author="w", ttl_s=ttl)
    assert board.get("k") is None


def test_large_values_are_truncated_in_the_event_but_stored_whole(board: Blackboard, rec: Recorder) -> None:
    big = "x" * 5000
    board.put("big", big, author="w")
    payload = rec.events[0][1]
    assert payload["value_truncated"] is True
    assert isinstance(payload["value"], str) and len(payload["value"]) == 2049
    assert payload["value"].startswith('"xxx') and payload["value"].endswith("…")
    assert board.get("big").value == big  # type: ignore[union-attr]


# --- compare-and-set -------------------------------------------------------------------------
def test_cas_with_the_current_version_succeeds(board: Blackboard) -> None:
    board.put("k", "v1", author="a")
    entry = board.put("k", "v2", author="b", expected_version=1)
    assert (entry.version, entry.value, entry.author) == (2, "v2", "b")


def test_cas_conflict_raises_says_both_versions_and_changes_nothing(board: Blackboard, rec: Recorder) -> None:
    board.put("k", "v1", author="a")
    board.put("k", "v2", author="a")
    rec.events.clear()

    with pytest.raises(VersionConflictError) as info:
        board.put("k", "v3", author="b", expected_version=1)

    msg = str(info.value)
    assert "expected version 1" in msg and "current version is 2" in msg and "re-read" in msg and "retry" in msg
    assert info.value.fields == {"key": "k", "expected": 1, "actual": 2}
    assert board.get("k").value == "v2"  # type: ignore[union-attr]
    assert [e.version for e in board.history("k")] == [1, 2]
    assert rec.events == [] and rec.notes == []


def test_cas_zero_means_must_not_exist(board: Blackboard) -> None:
    assert board.put("k", "first", author="a", expected_version=0).version == 1
    with pytest.raises(VersionConflictError, match="expected version 0 but the current version is 1"):
        board.put("k", "second", author="b", expected_version=0)


def test_cas_on_a_missing_key_with_nonzero_version_conflicts(board: Blackboard) -> None:
    with pytest.raises(VersionConflictError, match="current version is 0 \\(the key does not exist"):
        board.put("k", 1, author="a", expected_version=3)


def test_cas_treats_an_expired_entry_as_absent(board: Blackboard, clock: FakeClock) -> None:
    board.put("lock", "a", author="a", ttl_s=5)
    clock.advance(5)
    with pytest.raises(VersionConflictError):
        board.put("lock", "b", author="b", expected_version=1)
    entry = board.put("lock", "b", author="b", expected_version=0)
    assert entry.version == 2  # numbering continues, so versions are never reused
    assert board.get("lock") == entry


@pytest.mark.parametrize("bad", [-1, True, 1.0, "1"])
def test_expected_version_must_be_a_non_negative_int(board: Blackboard, bad: Any) -> None:
    with pytest.raises(ValueError, match="expected_version must be a non-negative integer"):
        board.put("k", 1, author="a", expected_version=bad)


# --- TTL -------------------------------------------------------------------------------------
def test_entry_expires_after_its_ttl_and_expiry_is_emitted_once(
    board: Blackboard, rec: Recorder, clock: FakeClock
) -> None:
    entry = board.put("tmp", 1, author="w", ttl_s=10)
    assert entry.expires_at == START + timedelta(seconds=10)
    clock.advance(9.999)
    assert board.get("tmp") == entry
    clock.advance(0.001)
    assert board.get("tmp") is None
    assert board.get("tmp") is None
    assert board.list() == []
    assert board.sweep() == []
    assert rec.types() == ["blackboard.put", "blackboard.expired"]
    assert rec.events[1] == (
        "blackboard.expired",
        {"key": "tmp", "version": 1, "author": "w", "expires_at": "2026-01-01T00:00:10+00:00"},
        {"status": "expired"},
    )
    assert board.history("tmp") == [entry]  # history keeps expired versions


def test_rewriting_an_expired_key_makes_it_live_again_and_can_expire_again(
    board: Blackboard, rec: Recorder, clock: FakeClock
) -> None:
    board.put("tmp", 1, author="w", ttl_s=1)
    clock.advance(2)
    assert board.get("tmp") is None
    board.put("tmp", 2, author="w", ttl_s=1)
    assert board.get("tmp").value == 2  # type: ignore[union-attr]
    clock.advance(2)
    assert board.get("tmp") is None
    assert rec.types() == ["blackboard.put", "blackboard.expired", "blackboard.put", "blackboard.expired"]
    assert [e[1]["version"] for e in rec.events] == [1, 1, 2, 2]


def test_sweep_reports_each_newly_expired_entry_once(board: Blackboard, rec: Recorder, clock: FakeClock) -> None:
    board.put("a", 1, author="w", ttl_s=1)
    board.put("b", 1, author="w", ttl_s=100)
    board.put("c", 1, author="w")
    clock.advance(1)
    assert [e.key for e in board.sweep()] == ["a"]
    assert board.sweep() == []
    clock.advance(100)
    assert [e.key for e in board.sweep()] == ["b"]
    assert [p["key"] for t, p, _ in rec.events if t == "blackboard.expired"] == ["a", "b"]


def test_an_entry_without_ttl_never_expires(board: Blackboard, clock: FakeClock) -> None:
    board.put("k", 1, author="w")
    clock.advance(10**9)
    assert board.get("k") is not None


# --- listing and history ---------------------------------------------------------------------
def test_list_is_sorted_by_key_filtered_by_prefix_and_live_only(board: Blackboard, clock: FakeClock) -> None:
    for key in ["research/z", "plan", "research/a", "researcher", "research/tmp"]:
        board.put(key, key, author="w", ttl_s=1 if key.endswith("tmp") else None)
    assert [e.key for e in board.list()] == ["plan", "research/a", "research/tmp", "research/z", "researcher"]
    assert [e.key for e in board.list("research/")] == ["research/a", "research/tmp", "research/z"]
    assert [e.key for e in board.list("research")] == ["research/a", "research/tmp", "research/z", "researcher"]
    clock.advance(1)
    assert [e.key for e in board.list("research/")] == ["research/a", "research/z"]
    assert board.list("nope/") == []


def test_list_returns_the_latest_version_of_each_key(board: Blackboard) -> None:
    board.put("k", "old", author="w")
    board.put("k", "new", author="w")
    assert [(e.value, e.version) for e in board.list()] == [("new", 2)]


def test_history_is_oldest_first_and_bounded(rec: Recorder, clock: FakeClock) -> None:
    board = Blackboard(SID, emit=rec.emit, clock=clock, history_limit=3)
    for i in range(1, 6):
        board.put("k", i, author="w")
    assert [(e.version, e.value) for e in board.history("k")] == [(3, 3), (4, 4), (5, 5)]
    assert board.history("other") == []


def test_default_history_keeps_the_last_50_versions(board: Blackboard) -> None:
    for i in range(60):
        board.put("k", i, author="w")
    versions = [e.version for e in board.history("k")]
    assert versions == list(range(11, 61))


def test_history_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history_limit"):
        Blackboard(SID, history_limit=0)


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "must not be empty"),
        ("a b", "whitespace"),
        (" a", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\nb", "whitespace"),
        ("a\x00b", "control"),
        ("/a", "non-empty segments"),
        ("a/", "non-empty segments"),
        ("a//b", "non-empty segments"),
        ("/", "non-empty segments"),
        ("x" * 257, "maximum is 256"),
        (5, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_invalid_keys_are_refused_with_the_reason(board: Blackboard, rec: Recorder, key: Any, why: str) -> None:
    with pytest.raises(InvalidKeyError, match=why):
        board.put(key, 1, author="w")
    with pytest.raises(InvalidKeyError):
        board.get(key)
    assert rec.events == []


@pytest.mark.parametrize("key", ["a", "research/sources/1", "x" * 256, "a.b-c_d:e", "ключ/ü"])
def test_valid_keys_are_accepted(board: Blackboard, key: str) -> None:
    assert board.put(key, 1, author="w").key == key


def test_invalid_key_errors_are_model_visible_value_errors() -> None:
    assert issubclass(InvalidKeyError, ModelVisibleError) and issubclass(InvalidKeyError, ValueError)
    assert issubclass(InvalidValueError, TroupeError) and issubclass(InvalidValueError, ValueError)


@pytest.mark.parametrize("prefix", ["a b", "x" * 257, 3])
def test_invalid_prefixes_are_refused(board: Blackboard, prefix: Any) -> None:
    with pytest.raises(InvalidKeyError):
        board.list(prefix)
    with pytest.raises(InvalidKeyError):
        board.subscribe("w", prefix)


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        ({1, 2}, "$", "set"),
        (b"raw", "$", "bytes"),
        (object(), "$", "object"),
        (datetime(2026, 1, 1), "$", "datetime"),
        (float("nan"), "$", "nan"),
        ({"a": [1, {"b": float("inf")}]}, "$.a[1].b", "inf"),
        ({"a": {1: "x"}}, "$.a", "int key"),
        ([1, [2, {3}]], "$[1][1]", "set"),
    ],
)
def test_non_json_values_are_refused_naming_where(
    board: Blackboard, rec: Recorder, value: Any, where: str, what: str
) -> None:
    with pytest.raises(InvalidValueError) as info:
        board.put("k", value, author="w")
    msg = str(info.value)
    assert f"at {where} " in msg and what in msg and "'k'" in msg
    assert board.get("k") is None and rec.events == []


def test_circular_values_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidValueError, match="nested more than"):
        ensure_json(loop)


def test_ensure_json_normalises_tuples_and_str_subclasses() -> None:
    out = ensure_json({"t": (1, 2.5, None, True), "id": AgentId("lead"), "k": EntryKind.FACT})
    assert out == {"t": [1, 2.5, None, True], "id": "lead", "k": "fact"}
    assert type(out["id"]) is str and type(out["k"]) is str


def test_json_preview_only_truncates_above_the_limit() -> None:
    assert json_preview({"a": 1}, limit=8) == ({"a": 1}, False)
    assert json_preview({"a": 10}, limit=8) == ('{"a": 10…', True)


# --- subscriptions ---------------------------------------------------------------------------
def test_subscribers_are_notified_of_matching_writes_except_their_own(board: Blackboard, rec: Recorder) -> None:
    board.subscribe("lead", "research/")
    board.subscribe("critic", "")
    board.subscribe("writer", "drafts/")

    board.put("research/a", 1, author="worker")
    board.put("research/b", 2, author="lead")
    board.put("plan", 3, author="critic")

    assert rec.notes == [
        (
            "critic",
            MessageKind.NOTICE,
            "Blackboard key 'research/a' updated to version 1 by worker.",
            {"blackboard_key": "research/a", "version": 1, "author": "worker"},
        ),
        ("lead", MessageKind.NOTICE, "Blackboard key 'research/a' updated to version 1 by worker.",
         {"blackboard_key": "research/a", "version": 1, "author": "worker"}),
        ("critic", MessageKind.NOTICE, "Blackboard key 'research/b' updated to version 1 by lead.",
         {"blackboard_key": "research/b", "version": 1, "author": "lead"}),
    ]
    assert all(isinstance(agent, AgentId) for agent, *_ in rec.notes)


def test_overlapping_prefixes_notify_once_per_write(board: Blackboard, rec: Recorder) -> None:
    board.subscribe("lead", "r")
    board.subscribe("lead", "research/")
    board.put("research/x", 1, author="w")
    assert [(a, d["version"]) for a, _, _, d in rec.notes] == [("lead", 1)]


def test_unsubscribe_one_prefix_or_all(board: Blackboard, rec: Recorder) -> None:
    board.subscribe("lead", "a/")
    board.subscribe("lead", "b/")
    assert board.subscriptions() == {"lead": ["a/", "b/"]}
    assert board.unsubscribe("lead", "a/") == 1
    assert board.unsubscribe("lead", "a/") == 0
    board.put("a/1", 1, author="w")
    board.put("b/1", 1, author="w")
    assert [d["blackboard_key"] for *_, d in rec.notes] == ["b/1"]
    assert board.unsubscribe("lead") == 1
    assert board.subscriptions() == {}
    board.put("b/2", 1, author="w")
    assert len(rec.notes) == 1
    assert board.unsubscribe("nobody") == 0


def test_failed_writes_notify_nobody(board: Blackboard, rec: Recorder) -> None:
    board.subscribe("lead", "")
    board.put("k", 1, author="w")
    with pytest.raises(VersionConflictError):
        board.put("k", 2, author="w", expected_version=0)
    assert len(rec.notes) == 1


def test_without_a_notify_callback_subscriptions_are_silent(rec: Recorder) -> None:
    board = Blackboard(SID, emit=rec.emit)
    board.subscribe("lead", "")
    board.put("k", 1, author="w")  # must not fail
    assert rec.types() == ["blackboard.put"]


# --- snapshots -------------------------------------------------------------------------------
def test_snapshot_restore_round_trip(board: Blackboard, clock: FakeClock) -> None:
    board.put("plan", {"v": 1}, author="lead", kind="decision", provenance={"message_id": "m-1"})
    board.put("plan", {"v": 2}, author="lead", expected_version=1)
    board.put("tmp", "soon gone", author="w", ttl_s=5)
    board.put("gone", "already gone", author="w", ttl_s=1)
    clock.advance(2)
    assert board.get("gone") is None  # expiry already reported before the snapshot
    board.subscribe("critic", "plan")

    snap = board.snapshot()
    text = json.dumps(snap)  # pure JSON
    rec2 = Recorder()
    restored = Blackboard.restore(json.loads(text), SID, emit=rec2.emit, notify=rec2.notify, clock=clock)

    assert restored.snapshot() == snap
    assert restored.get("plan") == board.get("plan")
    assert restored.history("plan") == board.history("plan")
    assert [e.key for e in restored.list()] == ["plan", "tmp"]
    assert rec2.events == []  # restoring emits nothing, and the reported expiry is not re-reported

    # the restored board keeps counting versions, keeps TTLs and keeps subscriptions
    assert restored.put("plan", {"v": 3}, author="lead", expected_version=2).version == 3
    clock.advance(3)
    assert restored.get("tmp") is None
    assert rec2.types() == ["blackboard.put", "blackboard.expired"]
    assert [(a, d["version"]) for a, _, _, d in rec2.notes] == [("critic", 3)]


def test_restore_refuses_an_unknown_snapshot_format() -> None:
    with pytest.raises(ValueError, match="snapshot format"):
        Blackboard.restore({"format": 99, "keys": {}, "subscriptions": {}}, SID)


def test_version_conflict_error_pickles_with_its_fields(board: Blackboard) -> None:
    board.put("k", 1, author="w")
    with pytest.raises(VersionConflictError) as info:
        board.put("k", 1, author="w", expected_version=0)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is VersionConflictError and copy.fields == info.value.fields
