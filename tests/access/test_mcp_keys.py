"""``troupe mcp serve --http`` behind the same API keys: refused without one beyond loopback; with
keys, the real MCP client gets in only with a user key in its Authorization header."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.mcp_serve_teams import REPO, write_teams
from tests.support.mcp_servers import free_port
from troupe.runtime.access import KeyStore
from troupe.runtime.cli.main import main
from troupe.runtime.eventlog.lake import query

SERVER = [sys.executable, "-m", "troupe.runtime.cli.main", "mcp", "serve"]


def test_non_loopback_without_keys_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TROUPE_HOME", str(tmp_path / "home"))
    code = main(["mcp", "serve", "--http", str(free_port()), "--host", "0.0.0.0", "--local",
                 "--lake", str(tmp_path / "lake")])
    err = capsys.readouterr().err
    assert code == 2 and "will not listen on 0.0.0.0 without API keys" in err
    assert "troupe keys create --user NAME --role admin" in err


def _client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


async def test_with_keys_the_mcp_client_needs_a_user_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = KeyStore(home / "keys.json")
    user_key, _ = store.create("alice", "user")
    viewer_key, _ = store.create("vic", "viewer")
    lake = tmp_path / "lake"
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*SERVER, "--http", str(port), "--local", "--teams-dir", str(write_teams(tmp_path / "t")),
                                 "--lake", str(lake)], cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "TROUPE_HOME": str(home), "RAY_AUTH_MODE": "disabled"})
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:  # unauthenticated: a plain 401 with the reason, once the port answers
            assert proc.poll() is None, log.read_text()
            try:
                r = await asyncio.to_thread(httpx2.post, url, json={}, timeout=5)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.2)
        assert r.status_code == 401 and r.json()["error"] == "missing_key"
        async with _client(url, user_key) as client:
            names = {t.name for t in (await client.list_tools()).tools}
        assert "run_team" in names
        for key in (None, viewer_key):
            with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the HTTP error; the lake says which below
                async with _client(url, key) as client:
                    await client.list_tools()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    rows = query(lake, "select agent, session_id, payload from events where type = 'access.denied' order by ts").to_pylist()
    errors = [(r["agent"], json.loads(r["payload"])["error"], json.loads(r["payload"])["status_code"]) for r in rows]
    assert errors[0] == ("mcp", "missing_key", 401)
    assert ("mcp", "role_too_low", 403) in errors and set(errors) == {("mcp", "missing_key", 401),
                                                                       ("mcp", "role_too_low", 403)}
