"""A real server with API keys (uvicorn on 127.0.0.1 in a thread, local placement): alice and bob
(role user), vic (viewer), root (admin), slow (user, 0.5 requests/s)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.server.conftest import serve_in_thread, write_teams
from troupe.runtime.access import KeyStore, RateLimit
from troupe.runtime.eventlog.lake import query
from troupe.runtime.server.app import build_app
from troupe.runtime.server.settings import ServerSettings


@dataclass
class Keyed:
    url: str
    app: FastAPI
    lake: Path
    store: KeyStore
    keys: dict[str, str]

    def as_(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)

    def denials(self) -> list[dict]:
        self.app.state.access.denials.flush()
        rows = query(self.lake, "select run_id, session_id, agent, status, payload from events "
                                "where type = 'access.denied' order by ts").to_pylist()
        return [r | {"payload": json.loads(r["payload"])} for r in rows]


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Keyed]:
    teams = tmp_path / "teams"
    write_teams(teams, tmp_path / "approved.txt")
    store = KeyStore(tmp_path / "home" / "keys.json")
    keys = {name: store.create(name, role)[0] for name, role in
            [("alice", "user"), ("bob", "user"), ("vic", "viewer"), ("root", "admin")]}
    keys["slow"] = store.create("slow", "user", rate_limit=RateLimit(per_second=0.5, burst=2))[0]
    lake = tmp_path / "lake"
    settings = ServerSettings(local=True, lake=str(lake), teams=[str(teams)], keys_path=str(store.path))
    app = build_app(settings)
    uv, thread, url = serve_in_thread(app)
    yield Keyed(url, app, lake, store, keys)
    uv.should_exit = True
    thread.join(30)
