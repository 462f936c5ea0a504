"""Access decisions without a web framework: 401 missing/invalid/revoked, 403 role/owner, 429, keyless loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from troupe.runtime.access import (
    LOCAL_ADMIN,
    AccessControl,
    AccessDenied,
    KeyStore,
    Principal,
    RateLimit,
    RateLimiter,
    check_bind,
    is_loopback,
)
from troupe.runtime.clock import FakeClock
from troupe.runtime.errors import ConfigError


def _denied(fn, *args, **kwargs) -> AccessDenied:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied) as info:
        fn(*args, **kwargs)
    return info.value


def test_keyless_store_is_the_local_admin_on_loopback_only(tmp_path: Path) -> None:
    access = AccessControl(KeyStore(tmp_path / "keys.json"))
    assert access.authenticate(None, client="127.0.0.1") == LOCAL_ADMIN
    assert access.authenticate(None, client="::1") == LOCAL_ADMIN
    d = _denied(access.authenticate, None, client="10.1.2.3")
    assert (d.status_code, d.error) == (401, "keys_required") and "troupe keys create" in d.reason
    d = _denied(access.authenticate, "Bearer trp_0123456789abcdef_x", client="127.0.0.1")
    assert (d.status_code, d.error) == (401, "invalid_key")


def test_missing_invalid_and_revoked_keys_say_which(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    access = AccessControl(store)
    text, rec = store.create("alice", "user")
    assert access.authenticate(f"Bearer {text}", client="10.0.0.1") == Principal(user="alice", role="user", key_id=rec.id)
    assert access.authenticate(f"bearer  {text} ") .user == "alice"
    cases = {
        None: "missing_key",
        "": "missing_key",
        f"Basic {text}": "invalid_key",
        "Bearer nonsense": "invalid_key",
        f"Bearer {text[:-2]}xx": "invalid_key",  # right id, wrong secret
        "Bearer trp_ffffffffffffffff_abc": "invalid_key",  # unknown id
    }
    for header, error in cases.items():
        d = _denied(access.authenticate, header, client="127.0.0.1")
        assert (d.status_code, d.error) == (401, error), header
    assert _denied(access.authenticate, f"Bearer {text[:-2]}xx").key_id == rec.id
    store.revoke(rec.id)
    d = _denied(access.authenticate, f"Bearer {text}")
    assert (d.status_code, d.error, d.key_id) == (401, "revoked_key", rec.id) and "revoked at" in d.reason


def test_roles_and_owners() -> None:
    viewer, user, admin = (Principal(user=u, role=r, key_id="k") for u, r in
                           [("vic", "viewer"), ("alice", "user"), ("root", "admin")])
    assert AccessControl.require_role(user, "user") is user
    d = _denied(AccessControl.require_role, viewer, "user", action="sending a turn")
    assert (d.status_code, d.error) == (403, "role_too_low") and "needs role user" in d.reason
    assert _denied(AccessControl.require_role, user, "admin").error == "role_too_low"
    assert AccessControl.require_owner(admin, "s-1", "alice") is admin
    assert AccessControl.require_owner(user, "s-1", "alice") is user
    d = _denied(AccessControl.require_owner, viewer, "s-1", "alice")
    assert (d.status_code, d.error, d.session_id, d.reason) == (403, "other_user_session", "s-1",
                                                                 "session s-1 belongs to another user")
    assert d.body() == {"error": "other_user_session", "reason": "session s-1 belongs to another user"}


def test_rate_limit_per_key_with_retry_after(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    clock = FakeClock()
    access = AccessControl(store, limiter=RateLimiter(RateLimit(per_second=2, burst=3), clock=clock))
    a, _ = store.create("alice", "user")
    b, _ = store.create("bob", "user", rate_limit=RateLimit(per_second=1, burst=1))
    for _ in range(3):
        access.authenticate(f"Bearer {a}")
    d = _denied(access.authenticate, f"Bearer {a}")
    assert (d.status_code, d.error) == (429, "rate_limited") and d.retry_after_s == pytest.approx(0.5)
    access.authenticate(f"Bearer {b}")  # its own bucket, its own limit
    assert _denied(access.authenticate, f"Bearer {b}").retry_after_s == pytest.approx(1.0)
    clock.advance(0.5)
    access.authenticate(f"Bearer {a}")
    assert _denied(access.authenticate, f"Bearer {a}").error == "rate_limited"


def test_bind_beyond_loopback_needs_a_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"]:
        assert is_loopback(host)
        check_bind(host, store)
    for host in ["0.0.0.0", "", "192.168.1.5", "::", "example.com"]:
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="troupe keys create --user NAME --role admin"):
            check_bind(host, store)
    store.create("ops", "admin")
    check_bind("0.0.0.0", store)
