"""OAuth 2.1 for an MCP server over HTTP (MCP's authorization spec), on the ``mcp`` SDK's own providers.

:func:`mcp_auth` gives the ``httpx2.Auth`` a connection's HTTP client uses. With ``auth:`` in the server's
config it signs in: protected-resource metadata (the ``resource_metadata`` of the WWW-Authenticate challenge,
then the path-based and root well-known URLs), authorization-server metadata (OAuth and OpenID, path-aware,
and the 2025-03-26 root fallbacks), a client ID metadata document where the server supports one, else a
pre-registered client or dynamic registration, PKCE (S256), the ``resource`` parameter (checked against the
server URL: a mismatch is refused), scope selection (the challenge, then ``scopes_supported``, omitted when
neither says; ``offline_access`` when offered), refresh, and step-up on ``403 insufficient_scope`` with a
limit. Grants: authorization code (``login`` headless or prompt: tools/mcp/oauth_login.py), client
credentials (secret or ``private_key_jwt``) and cross-app access (SEP-990 identity assertion).

Without ``auth:`` it only explains: a 401 or 403 is recorded as a message saying what the server asked for
and how to configure ``auth:``. Either way a request that stays unauthorized is not an exception inside the
transport: the server's 401/403 is handed back, and :attr:`McpAuth.failure` says what is missing (the
connection puts it in the error the model and the user see). Tokens live in tools/mcp/token_store.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    create_oauth_metadata_request,
    extract_field_from_www_auth,
    handle_protected_resource_response,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata
from pydantic import AnyUrl, PrivateAttr

from troupe.runtime.mcp_config import McpAuthConfig, McpServerConfig
from troupe.runtime.redact import redact_text
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import resolve
from troupe.tools.mcp.oauth_login import Login
from troupe.tools.mcp.token_store import TokenStore

logger = logging.getLogger(__name__)

MAX_STEP_UPS = 2
"""Authorizations one challenged scope set may cause before a 403 is handed back as it is (the spec asks
clients to limit step-up retries; the conformance suite allows at most 3)."""
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
STAND_IN = "Server returned an error response"
"""What the SDK's streamable-HTTP transport says for any HTTP error status."""
_CONFIG_HINT = ("add `auth: {}` to its entry under mcpServers in the team file to sign in with OAuth 2.1 "
                "(discovery, dynamic client registration, PKCE), `auth: {client_id: ..., client_secret: env:VAR}` "
                "for a pre-registered client, or send a token with `headers: {Authorization: 'Bearer "
                "${secret:NAME}'}`")


class _Metadata(OAuthClientMetadata):
    """Client metadata whose scope always includes the configured ``auth.scopes`` (the SDK replaces the
    scope with the server's challenge on each authorization)."""

    _always: str | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "scope" and self._always:
            extra = [s for s in (value or "").split() if s not in self._always.split()]
            value = " ".join([self._always, *extra])
        super().__setattr__(name, value)


class _Provider(OAuthClientProvider):
    """The SDK's authorization-code provider, with the expiry of a stored token known when it is loaded (the SDK
    takes a loaded token as valid forever, so after a restart an expired one was sent, refused with a 401 and
    replaced by a whole new sign-in instead of a refresh). The store counts ``expires_in`` down."""

    async def _initialize(self) -> None:
        await super()._initialize()
        if self.context.current_tokens is not None:
            self.context.update_token_expiry(self.context.current_tokens)


def _secret(server: str, field: str, ref: SecretRef) -> str:
    name = f"mcpServers.{server}.auth.{field}"
    return resolve(name, {name: ref})


def _scope(auth: McpAuthConfig) -> str | None:
    return " ".join(auth.scopes) if auth.scopes else None


def _fixed_client(server: str, auth: McpAuthConfig) -> OAuthClientInformationFull | None:
    if not auth.client_id:
        return None
    secret = _secret(server, "client_secret", auth.client_secret) if auth.client_secret else None
    method = auth.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    return OAuthClientInformationFull(client_id=auth.client_id, client_secret=secret, token_endpoint_auth_method=method,
                                      redirect_uris=[AnyUrl(auth.redirect_uri)], client_name=auth.client_name,
                                      grant_types=["authorization_code", "refresh_token"])


def build_provider(server: str, url: str, auth: McpAuthConfig, store: TokenStore, *,
                   issuer: str | None = None) -> httpx2.Auth:
    """The SDK provider for ``auth.grant`` (secrets are read here, on the node that connects)."""
    identity = f"{auth.grant}:{auth.client_id or auth.client_metadata_url or 'registered'}:{auth.client_name}"
    if auth.grant == "client_credentials":
        assert auth.client_id
        storage = store.storage(url, identity)
        if auth.private_key is not None:
            params = SignedJWTParameters(issuer=auth.client_id, subject=auth.client_id,
                                         signing_key=_secret(server, "private_key", auth.private_key),
                                         signing_algorithm=auth.signing_algorithm)
            return PrivateKeyJWTOAuthProvider(url, storage, auth.client_id, params.create_assertion_provider(),
                                              scope=_scope(auth), issuer=issuer or auth.issuer)
        assert auth.client_secret is not None
        method = auth.token_endpoint_auth_method if auth.token_endpoint_auth_method != "none" else None
        return ClientCredentialsOAuthProvider(url, storage, auth.client_id,
                                              _secret(server, "client_secret", auth.client_secret),
                                              token_endpoint_auth_method=method or "client_secret_basic",
                                              scope=_scope(auth), issuer=issuer or auth.issuer)
    if auth.grant == "identity_assertion":
        assert auth.client_id and auth.client_secret is not None and (issuer or auth.issuer)
        method = auth.token_endpoint_auth_method if auth.token_endpoint_auth_method != "none" else None
        return IdentityAssertionOAuthProvider(
            url, store.storage(url, identity), auth.client_id, _secret(server, "client_secret", auth.client_secret),
            issuer=issuer or auth.issuer or "", assertion_provider=IdJagExchange(server, auth),
            scope=_scope(auth), token_endpoint_auth_method=method or "client_secret_basic")
    metadata = _Metadata(client_name=auth.client_name, redirect_uris=[AnyUrl(auth.redirect_uri)],
                         grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                         token_endpoint_auth_method=auth.token_endpoint_auth_method)
    metadata._always = _scope(auth)
    login = Login(auth)
    fixed = _fixed_client(server, auth)
    return _Provider(url, metadata, store.storage(url, identity, fixed_client=fixed),
                     redirect_handler=login.redirect, callback_handler=login.callback,
                     client_metadata_url=None if fixed else auth.client_metadata_url)


class IdJagExchange:
    """SEP-990 leg 1: the IdP's ID token exchanged (RFC 8693) for an ID-JAG for the MCP authorization server."""

    def __init__(self, server: str, auth: McpAuthConfig) -> None:
        self.server, self.auth = server, auth

    async def __call__(self, audience: str, resource: str) -> str:
        auth = self.auth
        assert auth.idp_token_endpoint and auth.idp_id_token is not None
        data = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "audience": audience,
                "resource": resource, "subject_token": _secret(self.server, "idp_id_token", auth.idp_id_token),
                "subject_token_type": ID_TOKEN_TYPE}
        if auth.idp_client_id:
            data["client_id"] = auth.idp_client_id
        if auth.scopes:
            data["scope"] = " ".join(auth.scopes)
        async with httpx2.AsyncClient(timeout=30.0) as http:
            response = await http.post(auth.idp_token_endpoint, data=data)
        if response.status_code != 200:
            raise RuntimeError(f"the identity provider's token exchange at {auth.idp_token_endpoint} answered "
                               f"HTTP {response.status_code}: {response.text[:300]}")
        return str(response.json()["access_token"])


def _granted(provider: httpx2.Auth | None) -> set[str]:
    context = getattr(provider, "context", None)
    tokens = getattr(context, "current_tokens", None) if context is not None else getattr(provider, "_tokens", None)
    return set((getattr(tokens, "scope", None) or "").split())


def _challenge(response: httpx2.Response) -> str:
    parts = [f"{k}={v!r}" for k in ("error", "scope", "resource_metadata", "error_description")
             if (v := extract_field_from_www_auth(response, k))]
    return f"; the server's challenge: {', '.join(parts)}" if parts else ""


def explain_exception(server: str, e: BaseException) -> str:
    """One message for an OAuth flow that failed: what failed and what to configure."""
    text = redact_text(str(e) or type(e).__name__)
    kind = type(e).__name__
    hint = ""
    if "does not match expected" in text:
        hint = ("; Troupe will not send credentials for another resource (RFC 8707): check the server's url and "
                "its protected-resource metadata")
    elif kind == "OAuthRegistrationError" or "Registration failed" in text:
        hint = ("; the authorization server does not register clients dynamically here: register Troupe with it "
                "and set auth.client_id (and auth.client_secret)")
    elif kind == "OAuthTokenError" or "Token exchange failed" in text:
        hint = ("; check auth.client_id, auth.client_secret and auth.token_endpoint_auth_method against what the "
                "authorization server expects")
    elif kind.startswith(("Connect", "Read", "Timeout")) or isinstance(e, httpx2.TransportError):
        hint = "; the authorization server could not be reached"
    return f"OAuth sign-in to MCP server {server!r} failed ({kind}: {text}){hint}"


class McpAuth(httpx2.Auth):
    """The ``httpx2.Auth`` of one MCP connection: signs in when configured, limits step-ups, and records in
    :attr:`failure` why a request stayed unauthorized."""

    requires_response_body = True

    def __init__(self, server: str, cfg: McpServerConfig, *, store: TokenStore | None = None) -> None:
        assert cfg.url
        self.server, self.url, self.config = server, cfg.url, cfg.auth
        self.store = store or TokenStore()
        self.provider: httpx2.Auth | None = None
        self.failure: str | None = None
        """Why the last request stayed unauthorized (None after a success)."""
        self._step_ups: dict[frozenset[str], int] = {}

    def explain(self, detail: str) -> str:
        """The connection's error detail, replaced by what is missing when the server's answer was an HTTP
        401/403 (which the transport reports only as "Server returned an error response")."""
        if self.failure and (STAND_IN in detail or "401" in detail or "403" in detail):
            return self.failure
        return detail

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self.provider is None and self.config is not None:
            try:
                issuer = self.config.issuer
                if self.config.grant == "identity_assertion" and issuer is None:
                    for url in build_protected_resource_metadata_discovery_urls(None, self.url):
                        prm = await handle_protected_resource_response((yield create_oauth_metadata_request(url)))
                        if prm is not None:
                            issuer = str(prm.authorization_servers[0])
                            break
                    if issuer is None:
                        raise RuntimeError("the server publishes no protected-resource metadata naming its "
                                           "authorization server: set auth.issuer")
                self.provider = build_provider(self.server, self.url, self.config, self.store, issuer=issuer)
            except Exception as e:  # noqa: BLE001 - reported through `failure` with the server's own answer
                self.failure = explain_exception(self.server, e)
                yield request
                return
        if self.provider is None:
            self._judge((yield request))
            return
        flow = self.provider.async_auth_flow(request)
        response: httpx2.Response | None = None
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                if outgoing is request and self._futile_step_up(response):
                    return  # `failure` says why; the 403 is the answer
                if outgoing is not request:
                    response = await self._legacy_metadata(outgoing, response)
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            pass
        except Exception as e:  # noqa: BLE001 - the flow failed: hand back the server's answer, say why
            logger.info("MCP server %r: %s", self.server, explain_exception(self.server, e))
            failure = explain_exception(self.server, e)
            request.headers.pop("Authorization", None)
            yield request
            self.failure = failure
            return
        finally:
            await flow.aclose()
        if response is not None:
            self._judge(response)

    async def _legacy_metadata(self, sent: httpx2.Request, response: httpx2.Response) -> httpx2.Response:
        """A 2025-03-26 server (no protected-resource metadata) serves its authorization server's metadata at
        its own origin's root well-known URL, and that spec let the issuer name a path there (``/oauth``).
        Metadata served by the MCP server's own origin is as trustworthy as the server, so such an issuer is
        taken as the origin's (the SDK checks it strictly against the origin, RFC 8414 section 3.3)."""
        context = getattr(self.provider, "context", None)
        origin = httpx2.URL(self.url).copy_with(path="/", query=None, fragment=None)
        if (context is None or context.auth_server_url is not None or response.status_code != 200
                or sent.url != origin.join("/.well-known/oauth-authorization-server")):
            return response
        try:
            body = json.loads(await response.aread())
            issuer = httpx2.URL(str(body.get("issuer", "")))
        except (ValueError, TypeError, httpx2.InvalidURL):
            return response
        if (issuer.scheme, issuer.host, issuer.port) != (origin.scheme, origin.host, origin.port) or issuer.path in ("", "/"):
            return response
        body["issuer"] = str(origin).rstrip("/")
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=json.dumps(body).encode(),
                               request=sent)

    def _futile_step_up(self, response: httpx2.Response) -> bool:
        """A 403 ``insufficient_scope`` that another authorization would not fix: the challenged scopes are
        already granted, or they were asked for :data:`MAX_STEP_UPS` times already."""
        if response.status_code != 403 or extract_field_from_www_auth(response, "error") != "insufficient_scope":
            return False
        challenged = frozenset((extract_field_from_www_auth(response, "scope") or "").split())
        granted = _granted(self.provider)
        tries = self._step_ups.get(challenged, 0)
        if challenged and challenged <= granted:
            why = ("re-authorizing would not help: the token already has it and the server still refuses (check the "
                   "server's own permissions for this client or user)")
        elif tries >= MAX_STEP_UPS:
            why = (f"authorization was asked for it {tries} times and not granted: grant the scope to Troupe's client "
                   "at the authorization server, or list it in auth.scopes")
        else:
            self._step_ups[challenged] = tries + 1
            return False
        self.failure = self._scope_message(response, challenged, granted, why)
        return True

    def _scope_message(self, response: httpx2.Response, challenged: frozenset[str], granted: set[str],
                       why: str) -> str:
        need = " ".join(sorted(challenged)) or "(unnamed)"
        has = " ".join(sorted(granted)) or "none"
        return (f"MCP server {self.server!r} refused the request (HTTP 403 insufficient_scope): it needs scope "
                f"{need!r}, the token has {has!r}; {why}{_challenge(response)}")

    def _judge(self, response: httpx2.Response) -> None:
        if response.status_code < 400:
            self.failure = None
            return
        if response.status_code == 401:
            if self.config is None:
                self.failure = (f"MCP server {self.server!r} requires authorization (HTTP 401){_challenge(response)}; "
                                + _CONFIG_HINT)
            else:
                self.failure = (f"MCP server {self.server!r} still answers HTTP 401 after OAuth sign-in "
                                f"({self.config.grant}){_challenge(response)}; check that its authorization server "
                                "issues tokens for this server's URL (the resource parameter) and auth.scopes")
        elif response.status_code == 403:
            error = extract_field_from_www_auth(response, "error")
            if error == "insufficient_scope":
                challenged = frozenset((extract_field_from_www_auth(response, "scope") or "").split())
                self.failure = self._scope_message(response, challenged, _granted(self.provider),
                                                   "the authorization server did not grant it: grant the scope to "
                                                   "Troupe's client there, or list it in auth.scopes" if self.config
                                                   else "no OAuth is configured (" + _CONFIG_HINT + ")")
            else:
                self.failure = f"MCP server {self.server!r} refused the request (HTTP 403){_challenge(response)}"


def mcp_auth(server: str, cfg: McpServerConfig, *, store: TokenStore | None = None) -> McpAuth | None:
    """The auth of an HTTP server's connection (None for stdio)."""
    if cfg.transport != "http":
        return None
    return McpAuth(server, cfg, store=store)


__all__ = ["MAX_STEP_UPS", "IdJagExchange", "McpAuth", "build_provider", "explain_exception", "mcp_auth"]
