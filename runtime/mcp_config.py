"""Permission levels, and one MCP server's entry in the team file (``mcpServers``), with its per-tool policy,
roots, logging and OAuth settings. Re-exported by :mod:`troupe.runtime.config`."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from troupe.runtime.safety import SecretRef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
"""MCP's logging levels (RFC 5424 severities)."""


class PermissionLevel(StrEnum):
    L0 = "L0"
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"
    L5 = "L5"


class Permissions(_Strict):
    level: PermissionLevel = PermissionLevel.L1
    scopes: list[str] = Field(default_factory=list)


class McpToolPolicy(_Strict):
    """Policy for one tool of an MCP server, or for every tool whose name matches a pattern (``fnmatch``:
    ``send_*``, ``*``): what is unset falls back to the server's setting. The first exact name wins, then the
    longest matching pattern."""

    level: PermissionLevel | None = None
    scopes: list[str] | None = None
    needs_approval: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    idempotent: bool | None = None
    """A retried call is safe (the scheduler may replay it after a worker crash)."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Most calls to this tool in flight at once, per session."""
    disabled: bool = False
    """Hidden from agents; a call is refused as ``guardrail.denied`` (``not_granted``)."""
    task: bool | None = None
    """Call it as an MCP task (``tasks/get`` polled, ``tasks/cancel`` when our call ends first) when the server
    says task support is ``optional``; a tool whose support is ``required`` always is."""


class McpAuthConfig(_Strict):
    """OAuth 2.1 for an HTTP server (MCP's authorization spec: protected-resource and authorization-server
    discovery, dynamic client registration, a client ID metadata document or a pre-registered client, PKCE,
    refresh, step-up on ``insufficient_scope``). Tokens are kept in Troupe's token store
    (``$TROUPE_HOME/mcp-tokens``, mode 0600), never in the lake. ``auth: {}`` is enough for most servers."""

    grant: Literal["authorization_code", "client_credentials", "identity_assertion"] = "authorization_code"
    """``authorization_code``: a user's sign-in (PKCE). ``client_credentials``: a machine client (with
    ``client_secret``, or ``private_key`` for ``private_key_jwt``). ``identity_assertion``: enterprise cross-app
    access (SEP-990): the IdP's ID token is exchanged for an ID-JAG, then for an access token."""
    client_id: str | None = None
    """A pre-registered client; without one the client uses ``client_metadata_url`` where the authorization
    server supports it, else registers itself (dynamic client registration)."""
    client_secret: SecretRef | None = None
    private_key: SecretRef | None = None
    """PEM private key for ``private_key_jwt`` (client credentials signed with a JWT assertion)."""
    signing_algorithm: str = "ES256"
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None = None
    """Default: ``client_secret_basic`` with a secret (RFC 7591's default), ``none`` without."""
    client_metadata_url: str | None = None
    """An HTTPS URL whose document describes this client (CIMD): used as the client ID where supported."""
    issuer: str | None = None
    """The authorization server the credentials belong to (client credentials, identity assertion); default:
    the one the server's protected-resource metadata names."""
    scopes: list[str] | None = None
    """Scopes to ask for; default: what the server's WWW-Authenticate challenge or metadata says."""
    redirect_uri: str = "http://127.0.0.1:33418/callback"
    client_name: str = "troupe"
    login: Literal["auto", "headless", "prompt"] = "auto"
    """How the authorization step is done: ``headless`` follows the authorization URL without a browser
    (servers that approve at once); ``prompt`` prints the URL and waits for the browser's redirect on
    ``redirect_uri`` (loopback); ``auto`` tries headless, then prompts when a terminal is attached."""
    login_timeout_s: float = Field(default=300.0, gt=0)
    idp_token_endpoint: str | None = None
    """``identity_assertion``: the enterprise IdP's token endpoint (RFC 8693 token exchange)."""
    idp_id_token: SecretRef | None = None
    """``identity_assertion``: where the user's ID token from the IdP is read."""
    idp_client_id: str | None = None

    @model_validator(mode="after")
    def _grant_needs(self) -> McpAuthConfig:
        one_key = (self.client_secret is None) != (self.private_key is None)
        if self.grant == "client_credentials" and not (self.client_id and one_key):
            raise ValueError("auth.grant client_credentials needs client_id and one of client_secret or private_key")
        if self.grant == "identity_assertion" and not (self.client_id and self.client_secret and self.idp_token_endpoint
                                                       and self.idp_id_token):
            raise ValueError("auth.grant identity_assertion needs client_id, client_secret, idp_token_endpoint and "
                             "idp_id_token")
        return self


class McpServerConfig(_Strict):
    """One entry of the usual ``mcpServers`` JSON: a stdio ``command`` or a streamable-HTTP ``url``.

    The Troupe-specific keys (permissions, approval, timeouts, sampling) are optional; a plain
    Claude-Desktop-style entry works as it is.
    """

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for a stdio server (values may be ``${VAR}`` to copy from the caller's)."""
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers (values may be ``${VAR}``; they are redacted from events)."""
    type: Literal["stdio", "http", "streamable-http", "streamable_http"] | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    """Per tool call."""
    connect_timeout_s: float = Field(default=30.0, gt=0)
    level: PermissionLevel = PermissionLevel.L2
    """Permission level an agent needs to call this server's tools."""
    scopes: list[str] = Field(default_factory=list)
    """Scopes an agent needs (e.g. ``file:read``, ``network:external``)."""
    needs_approval: bool | list[str] = False
    """``true`` for every tool of the server, or the names of the tools that need approval."""
    sampling: bool | str = False
    """Answer the server's sampling requests: ``true`` with the calling agent's model, or a profile name."""
    sampling_max_tokens: int = Field(default=1024, ge=1)
    scope: Literal["node", "session"] = "node"
    """``node``: one connection per config per node, shared by every session there. ``session``: one
    process (or HTTP connection) per session, closed when the session ends; its args, env, cwd, url
    and headers may use ``${session_id}``, ``${sample_dir}``, ``${case_id}`` and ``${sample}``."""
    sequential: bool = False
    """The calls one session makes to this server run one after another, in the order the model made them."""
    tools: dict[str, McpToolPolicy] = Field(default_factory=dict)
    """Per-tool policy by name or pattern (see :class:`McpToolPolicy`)."""
    roots: list[str] = Field(default_factory=list)
    """Roots offered to the server besides the session's workspace (paths or ``file://`` URIs)."""
    log_level: LogLevel | None = None
    """Sent as ``logging/setLevel`` after connecting; the server's log messages become ``mcp.log`` events."""
    elicitation_timeout_s: float = Field(default=300.0, gt=0)
    """How long a server's elicitation request waits for an answer; then it is declined."""
    auth: McpAuthConfig | None = None
    """OAuth 2.1 settings for an HTTP server that needs them (discovery alone works for most)."""
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    """Where the secrets its env, args and headers name (``${secret:NAME}``) are read: filled in from the
    team's ``secrets:`` when the team loads (references only, never values; docs/secrets.md)."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCP server needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command else "http"


