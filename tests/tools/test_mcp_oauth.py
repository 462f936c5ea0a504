"""OAuth for MCP servers without the conformance suite: the token store (0600, outside the lake, redacted,
expiry that counts down across restarts), the errors a 401/403 turns into (what is missing, how to configure
``auth:``), the step-up limit, and the login handlers. The whole flows are checked against the official suite
in tests/conformance/test_client_auth_conformance.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import ValidationError

from troupe.runtime.config import McpServerConfig
from troupe.runtime.mcp_config import McpAuthConfig
from troupe.runtime.redact import redact_text
from troupe.tools.mcp.connection import McpConnection
from troupe.tools.mcp.errors import McpConnectionError
from troupe.tools.mcp.oauth import STAND_IN, McpAuth, explain_exception, mcp_auth
from troupe.tools.mcp.oauth_login import LoginError, _result, prompt
from troupe.tools.mcp.token_store import TokenStore, default_root

URL = "http://mcp.test/mcp"


# ---- the token store ----
def test_tokens_are_stored_0600_outside_the_lake_and_redacted(tmp_path: Path) -> None:
    storage = TokenStore(tmp_path / "mcp-tokens").storage(URL, "authorization_code:registered:troupe")
    token = OAuthToken(access_token="at-" + "x" * 20, refresh_token="rt-" + "y" * 20, expires_in=3600, scope="a b")
    asyncio.run(storage.set_tokens(token))
    assert stat.S_IMODE(storage.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(storage.path.parent.stat().st_mode) == 0o700
    assert storage.path.name.startswith("mcp.test-")
    loaded = asyncio.run(storage.get_tokens())
    assert loaded is not None and loaded.access_token == token.access_token and loaded.scope == "a b"
    assert redact_text(f"Bearer-less {token.access_token} and {token.refresh_token}") == \
        "Bearer-less [redacted] and [redacted]"
    assert TokenStore(tmp_path / "mcp-tokens").servers() == [URL]


def test_a_stored_token_keeps_counting_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = TokenStore(tmp_path).storage(URL, "id")
    asyncio.run(storage.set_tokens(OAuthToken(access_token="a" * 12, expires_in=100)))
    later = time.time() + 70
    monkeypatch.setattr(time, "time", lambda: later)
    tokens = asyncio.run(storage.get_tokens())
    assert tokens is not None and tokens.expires_in is not None and 28 <= tokens.expires_in <= 30


def test_a_preregistered_client_secret_is_never_written(tmp_path: Path) -> None:
    fixed = OAuthClientInformationFull(client_id="pre", client_secret="s3cret-value", redirect_uris=None)
    storage = TokenStore(tmp_path).storage(URL, "id", fixed_client=fixed)
    asyncio.run(storage.set_client_info(fixed))
    asyncio.run(storage.set_tokens(OAuthToken(access_token="b" * 12)))
    assert asyncio.run(storage.get_client_info()) is fixed
    assert "s3cret-value" not in storage.path.read_text()
    assert redact_text("s3cret-value") == "[redacted]"


def test_a_registered_client_is_kept_with_the_tokens(tmp_path: Path) -> None:
    storage = TokenStore(tmp_path).storage(URL, "id")
    client = OAuthClientInformationFull(client_id="dcr-1", client_secret="dcr-secret-1", redirect_uris=None)
    asyncio.run(storage.set_client_info(client))
    again = TokenStore(tmp_path).storage(URL, "id")
    info = asyncio.run(again.get_client_info())
    assert info is not None and info.client_id == "dcr-1"


def test_a_broken_or_foreign_file_starts_over(tmp_path: Path) -> None:
    storage = TokenStore(tmp_path).storage(URL, "id")
    storage.path.parent.mkdir(parents=True, exist_ok=True)
    storage.path.write_text("{not json")
    assert asyncio.run(storage.get_tokens()) is None
    storage.path.write_text(json.dumps({"server_url": "http://other/mcp", "tokens": {"access_token": "c" * 12}}))
    assert asyncio.run(storage.get_tokens()) is None
    storage.clear()
    assert not storage.path.exists()


def test_default_root_is_under_troupe_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TROUPE_HOME", str(tmp_path))
    assert default_root() == tmp_path / "mcp-tokens"


# ---- config ----
def test_auth_config_says_what_a_grant_needs() -> None:
    with pytest.raises(ValidationError, match="client_credentials needs client_id"):
        McpAuthConfig(grant="client_credentials", client_id="c")
    with pytest.raises(ValidationError, match="identity_assertion needs"):
        McpAuthConfig(grant="identity_assertion", client_id="c")
    assert McpAuthConfig().grant == "authorization_code"
    assert mcp_auth("s", McpServerConfig(command="x")) is None


# ---- what a 401/403 says ----
async def _send(auth: McpAuth, handler: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler), auth=auth) as http:
        return await http.post(URL, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})


CHALLENGE = 'Bearer resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp", scope="files:read"'


def test_a_401_without_auth_config_says_how_to_configure_it() -> None:
    auth = McpAuth("files", McpServerConfig(url=URL))
    response = asyncio.run(_send(auth, lambda r: httpx2.Response(401, headers={"WWW-Authenticate": CHALLENGE})))
    assert response.status_code == 401
    message = auth.explain(STAND_IN)
    assert "requires authorization (HTTP 401)" in message and "auth: {}" in message
    assert "scope='files:read'" in message and "oauth-protected-resource/mcp" in message
    assert auth.explain("Invalid params") == "Invalid params"


def test_a_success_clears_the_failure() -> None:
    auth = McpAuth("files", McpServerConfig(url=URL))
    asyncio.run(_send(auth, lambda r: httpx2.Response(401)))
    assert auth.failure
    asyncio.run(_send(auth, lambda r: httpx2.Response(200, json={})))
    assert auth.failure is None and auth.explain(STAND_IN) == STAND_IN


class MockServer:
    """An MCP server and its authorization server in one MockTransport: 401 without a token, 403
    insufficient_scope for ``mcp:admin`` with one, whatever the token's scope."""

    def __init__(self) -> None:
        self.token_requests = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path == "/.well-known/oauth-protected-resource/mcp":
            return httpx2.Response(200, json={"resource": URL, "authorization_servers": ["http://mcp.test"]})
        if path == "/.well-known/oauth-authorization-server":
            return httpx2.Response(200, json={"issuer": "http://mcp.test", "authorization_endpoint": "http://mcp.test/a",
                                              "token_endpoint": "http://mcp.test/token", "response_types_supported":
                                              ["code"], "grant_types_supported": ["client_credentials"]})
        if path == "/token":
            self.token_requests += 1
            return httpx2.Response(200, json={"access_token": "cc-token-123456", "token_type": "Bearer",
                                              "scope": "mcp:admin", "expires_in": 3600})
        if "authorization" not in request.headers:
            return httpx2.Response(401, headers={"WWW-Authenticate": 'Bearer scope="mcp:admin", resource_metadata='
                                                 '"http://mcp.test/.well-known/oauth-protected-resource/mcp"'})
        return httpx2.Response(403, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="mcp:admin"'})


def test_a_403_the_token_already_covers_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_TEST_OAUTH_SECRET", "client-secret-value")
    cfg = McpServerConfig(url=URL, auth={"grant": "client_credentials", "client_id": "svc",
                                         "client_secret": "env:TROUPE_TEST_OAUTH_SECRET", "issuer": "http://mcp.test"})
    auth = McpAuth("admin", cfg, store=TokenStore(tmp_path))
    server = MockServer()
    assert asyncio.run(_send(auth, server)).status_code == 403
    assert asyncio.run(_send(auth, server)).status_code == 403
    assert server.token_requests == 1, "a 403 for a scope the token has must not start another authorization"
    message = auth.explain(STAND_IN)
    assert "needs scope 'mcp:admin', the token has 'mcp:admin'" in message
    assert "re-authorizing would not help" in message
    assert "cc-token-123456" not in message


def test_flow_errors_say_what_to_configure() -> None:
    mismatch = explain_exception("s", RuntimeError("Protected resource https://evil/mcp does not match expected x"))
    assert "RFC 8707" in mismatch and "will not send credentials" in mismatch
    from mcp.client.auth import OAuthRegistrationError
    registration = explain_exception("s", OAuthRegistrationError("Registration failed: 404"))
    assert "auth.client_id" in registration


async def _unauthorized_server() -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        body = b'{"error":"invalid_token"}'
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer scope=\"mail:read\"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_connection_to_a_protected_server_says_what_is_missing() -> None:
    """Was: "could not be started (...): MCPError: Server returned an error response" (no status, no hint)."""
    async def main() -> str:
        server, port = await _unauthorized_server()
        conn = McpConnection("mail", McpServerConfig(url=f"http://127.0.0.1:{port}/mcp", connect_timeout_s=10))
        try:
            await conn.start()
        except McpConnectionError as e:
            return str(e)
        finally:
            await conn.close()
            server.close()
        return "connected"

    message = asyncio.run(main())
    assert "requires authorization (HTTP 401)" in message and "scope='mail:read'" in message
    assert "auth: {}" in message and STAND_IN not in message


# ---- login ----
def test_the_redirect_gives_code_and_state_or_the_error() -> None:
    result = _result("http://127.0.0.1:1/callback?code=abc&state=xyz&iss=http%3A%2F%2Fas")
    assert (result.code, result.state, result.iss) == ("abc", "xyz", "http://as")
    with pytest.raises(LoginError, match="access_denied: no"):
        _result("http://127.0.0.1:1/callback?error=access_denied&error_description=no")


def test_prompt_waits_for_the_browser_on_the_loopback_redirect(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> Any:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        uri = f"http://127.0.0.1:{port}/callback"
        waiting = asyncio.create_task(prompt("https://as.example/authorize?x=1", uri, timeout_s=10))
        await asyncio.sleep(0.1)
        async with httpx2.AsyncClient() as http:
            page = await http.get(f"{uri}?code=the-code&state=s1")
        return page.status_code, await waiting

    status, result = asyncio.run(main())
    assert status == 200 and (result.code, result.state) == ("the-code", "s1")
    assert "https://as.example/authorize?x=1" in capsys.readouterr().err


def test_prompt_refuses_a_redirect_it_cannot_listen_on() -> None:
    with pytest.raises(LoginError, match="not a loopback"):
        asyncio.run(prompt("https://as/authorize", "https://app.example/callback", timeout_s=1))


def test_token_files_are_not_world_readable_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        storage = TokenStore(tmp_path / "t").storage(URL, "id")
        asyncio.run(storage.set_tokens(OAuthToken(access_token="d" * 12)))
    finally:
        os.umask(old)
    assert stat.S_IMODE(storage.path.stat().st_mode) == 0o600


def test_an_expired_stored_token_is_refreshed_without_a_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_TEST_OAUTH_SECRET", "client-secret-value")
    cfg = McpServerConfig(url=URL, auth={"client_id": "pre", "client_secret": "env:TROUPE_TEST_OAUTH_SECRET",
                                         "login": "headless"})
    store = TokenStore(tmp_path)
    auth = McpAuth("mail", cfg, store=store)
    storage = store.storage(URL, "authorization_code:pre:troupe")
    asyncio.run(storage.set_tokens(OAuthToken(access_token="old-token-1", refresh_token="refresh-1", expires_in=0)))
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            seen.append(request.content.decode())
            return httpx2.Response(200, json={"access_token": "new-token-2", "token_type": "Bearer", "expires_in": 60})
        ok = request.headers.get("authorization") == "Bearer new-token-2"
        return httpx2.Response(200 if ok else 401, json={})

    time.sleep(0.01)
    assert asyncio.run(_send(auth, handler)).status_code == 200
    assert len(seen) == 1 and "grant_type=refresh_token" in seen[0] and "refresh_token=refresh-1" in seen[0]
    kept = asyncio.run(storage.get_tokens())
    assert kept is not None and kept.access_token == "new-token-2" and kept.refresh_token == "refresh-1"
