"""The authorization step of OAuth's authorization-code flow: getting from the authorization URL to the code.

Troupe runs unattended, so there are two ways (``auth.login``):

- ``headless``: fetch the authorization URL without a browser and follow its redirects until one points at
  ``redirect_uri``; the code and state are read from that redirect. This works with authorization servers
  that approve at once (a client already consented, the conformance suite's mock server).
- ``prompt``: print the URL (stderr and the log) and wait for the browser to come back to ``redirect_uri`` on
  the loopback interface, within ``login_timeout_s``.

``auto`` (the default) tries headless first and prompts only when a terminal is attached.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.shared.auth import AuthorizationCodeResult

from troupe.runtime.mcp_config import McpAuthConfig

logger = logging.getLogger(__name__)

MAX_HOPS = 10


class LoginError(Exception):
    """The authorization step did not produce a code; the message says why and what to do."""


def _is_redirect_uri(location: str, redirect_uri: str) -> bool:
    a, b = urlsplit(location), urlsplit(redirect_uri)
    return (a.scheme, a.hostname, a.port, a.path or "/") == (b.scheme, b.hostname, b.port, b.path or "/")


def _result(url: str) -> AuthorizationCodeResult:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "code" not in query:
        error = query.get("error", "no code")
        detail = query.get("error_description", "")
        raise LoginError(f"the authorization server answered with {error}{': ' + detail if detail else ''}")
    return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))


async def headless(url: str, redirect_uri: str, *, timeout_s: float = 30.0) -> AuthorizationCodeResult:
    """Follow ``url``'s redirects (without a browser) until one points at ``redirect_uri``."""
    async with httpx2.AsyncClient(timeout=timeout_s, follow_redirects=False) as http:
        for _ in range(MAX_HOPS):
            response = await http.get(url)
            location = response.headers.get("location")
            if response.is_redirect and location:
                url = str(response.url.join(location))
                if _is_redirect_uri(url, redirect_uri):
                    return _result(url)
                continue
            raise LoginError(
                f"the authorization page wants a person (HTTP {response.status_code} instead of a redirect to "
                f"{redirect_uri}); sign in once with auth.login: prompt (the URL is printed and the browser's "
                "redirect is awaited on redirect_uri), after which the stored refresh token keeps it going")
    raise LoginError(f"more than {MAX_HOPS} redirects without reaching {redirect_uri}")


async def prompt(url: str, redirect_uri: str, *, timeout_s: float) -> AuthorizationCodeResult:
    """Print ``url`` and wait for the browser's redirect to ``redirect_uri`` (a loopback listener)."""
    target = urlsplit(redirect_uri)
    if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise LoginError(f"auth.redirect_uri {redirect_uri!r} is not a loopback http URL Troupe can listen on")
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
            ok = urlsplit(path).path == (target.path or "/")
            body = b"Signed in: you can close this window." if ok else b"Not found"
            writer.write(b"HTTP/1.1 " + (b"200 OK" if ok else b"404 Not Found") + b"\r\nContent-Type: text/plain"
                         b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
            if ok and not got.done():
                got.set_result(f"{redirect_uri.split('?', 1)[0]}?{urlsplit(path).query}")
        finally:
            writer.close()

    server = await asyncio.start_server(serve, target.hostname, target.port or 80)
    try:
        message = f"Troupe: open this URL to authorize the MCP server (waiting {timeout_s:.0f}s):\n  {url}"
        print(message, file=sys.stderr, flush=True)
        logger.warning("%s", message)
        try:
            return _result(await asyncio.wait_for(got, timeout_s))
        except TimeoutError:
            raise LoginError(f"nobody completed the sign-in within login_timeout_s={timeout_s:.0f}s") from None
    finally:
        server.close()


class Login:
    """The SDK's redirect and callback handlers for one flow, by ``auth.login``."""

    def __init__(self, auth: McpAuthConfig) -> None:
        self.auth = auth
        self._result: AuthorizationCodeResult | None = None

    async def redirect(self, url: str) -> None:
        mode, uri = self.auth.login, self.auth.redirect_uri
        if mode == "prompt":
            self._result = await prompt(url, uri, timeout_s=self.auth.login_timeout_s)
            return
        try:
            self._result = await headless(url, uri)
        except LoginError:
            if mode == "headless" or not sys.stdin.isatty():
                raise
            self._result = await prompt(url, uri, timeout_s=self.auth.login_timeout_s)

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise LoginError("no authorization code was received")
        return result


__all__ = ["Login", "LoginError", "headless", "prompt"]
