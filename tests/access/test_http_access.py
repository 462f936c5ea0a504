"""Access control over real HTTP (uvicorn on 127.0.0.1, local placement): keys, roles, owners, rate
limits, revocation from the CLI while the server runs, and every refusal recorded in the lake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.access.conftest import Keyed
from troupe.runtime.access import KeyStore
from troupe.runtime.cli.main import main
from troupe.runtime.errors import ConfigError
from troupe.runtime.server.app import build_app
from troupe.runtime.server.settings import ServerSettings


def _session_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every API route that concerns one session (a session, approval or elicitation id in
    its path), from the app's OpenAPI schema: a route added later is in it, so it cannot be missed here."""
    return sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items()
                  for method in ops if "{sid}" in path or "{aid}" in path or "{eid}" in path)


def test_another_users_key_gets_403_on_every_session_route_and_an_admin_sees_all(keyed: Keyed) -> None:
    with keyed.as_("alice") as alice, keyed.as_("bob") as bob, keyed.as_("root") as root:
        made = alice.post("/sessions", json={"team": "gated", "input": "go"})
        assert made.status_code == 201 and made.json()["user"] == "alice"
        sid = made.json()["id"]
        routes = _session_routes(keyed.app)
        assert len(routes) >= 13, routes  # show, turns, result, cancel, resume, timeline, events, blackboard, tasks, approve, deny,
        assert ("POST", "/api/v1/elicitations/{eid}/answer") in routes  # ... and the elicitations: list and answer
        assert ("GET", "/api/v1/sessions/{sid}/elicitations") in routes
        body = {"input": "x", "reason": "r", "action": "decline"}
        for method, path in routes:
            url = path.replace("{sid}", sid).replace("{aid}", f"{sid}:1").replace("{eid}", f"{sid}:el1")
            r = bob.request(method, url.removeprefix("/api/v1"), json=body if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.json()["error"] and sid not in r.text.replace(f"session {sid} belongs to another user", ""), r.text
        r = bob.get("/approvals", params={"session": sid})
        assert r.status_code == 403
        r = bob.get("/elicitations", params={"session": sid})
        assert r.status_code == 403
        assert bob.get("/elicitations").json() == []
        assert [s["id"] for s in bob.get("/sessions").json()] == []
        assert sid in [s["id"] for s in alice.get("/sessions").json()]
        assert sid in [s["id"] for s in root.get("/sessions", params={"user": "alice"}).json()]
        assert root.get(f"/sessions/{sid}").status_code == 200
        assert root.post(f"/sessions/{sid}/cancel").status_code == 202  # an admin touches any session
    denied = [d for d in keyed.denials() if d["payload"]["user"] == "bob"]
    assert len(denied) == len(routes) + 2
    assert {(d["run_id"], d["session_id"], d["agent"], d["status"]) for d in denied} == {("access", "-", "http", "denied")}
    assert {d["payload"]["session"] for d in denied} == {sid}
    assert {d["payload"]["status_code"] for d in denied} == {403}
    assert {(d["payload"]["method"], d["payload"]["path"].replace(sid, "{sid}").replace("{sid}:1", "{aid}")
             .replace("{sid}:el1", "{eid}")) for d in denied[:-2]} == set(routes)


def test_a_viewer_reads_but_cannot_create_or_send(keyed: Keyed) -> None:
    with keyed.as_("vic") as vic, keyed.as_("alice") as alice:
        assert vic.get("/sessions").status_code == 200 and vic.get("/teams").status_code == 200
        r = vic.post("/sessions", json={"team": "echo", "input": "hi"})
        assert r.status_code == 403 and r.json()["error"] == "role_too_low"
        assert "needs role user" in r.json()["reason"] and "role viewer" in r.json()["reason"]
        sid = alice.post("/sessions", json={"team": "echo", "input": "hi"}).json()["id"]
        r = vic.post(f"/sessions/{sid}/turns", json={"input": "more"})
        assert r.status_code == 403 and r.json()["error"] == "role_too_low"
        r = vic.post(f"/elicitations/{sid}:el1/answer", json={"action": "decline"})
        assert r.status_code == 403 and r.json()["error"] == "role_too_low"
    assert [d["payload"]["error"] for d in keyed.denials()] == ["role_too_low"] * 3


def test_missing_invalid_and_revoked_keys_are_401_and_say_which(keyed: Keyed) -> None:
    with keyed.as_(None) as anon:
        r = anon.get("/sessions")
        assert r.status_code == 401 and r.json()["error"] == "missing_key" and r.headers["www-authenticate"] == "Bearer"
        assert anon.get("/health").status_code == 200  # no auth
        r = anon.get("/sessions", headers={"Authorization": "Bearer trp_0123456789abcdef_nope"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_key"
    with keyed.as_("alice") as alice:
        assert alice.get("/sessions").status_code == 200
        key_id = keyed.keys["alice"].split("_")[1]
        assert main(["keys", "revoke", key_id, "--keys", str(keyed.store.path)]) == 0  # another process's view of the file
        r = alice.get("/sessions")
        assert r.status_code == 401 and r.json()["error"] == "revoked_key" and key_id in r.json()["reason"]
    errors = [(d["payload"]["error"], d["payload"]["key_id"]) for d in keyed.denials()]
    assert errors == [("missing_key", None), ("invalid_key", "0123456789abcdef"), ("revoked_key", key_id)]
    assert all(keyed.keys["alice"].split("_", 2)[2] not in json.dumps(d) for d in keyed.denials())


def test_rate_limit_answers_429_with_retry_after(keyed: Keyed) -> None:
    with keyed.as_("slow") as slow:
        assert [slow.get("/sessions").status_code for _ in range(2)] == [200, 200]
        r = slow.get("/sessions")
        assert r.status_code == 429 and r.json()["error"] == "rate_limited" and r.headers["retry-after"] == "2"
    assert [d["payload"]["status_code"] for d in keyed.denials()] == [429]


def test_a_non_loopback_bind_without_keys_refuses_to_start(tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    with pytest.raises(ConfigError, match="without API keys.*troupe keys create --user NAME --role admin"):
        build_app(ServerSettings(local=True, host="0.0.0.0", keys_path=str(store), lake=str(tmp_path / "lake")))
    build_app(ServerSettings(local=True, host="127.0.0.1", keys_path=str(store), lake=str(tmp_path / "lake")))
    KeyStore(store).create("ops", "admin")
    build_app(ServerSettings(local=True, host="0.0.0.0", keys_path=str(store), lake=str(tmp_path / "lake")))
