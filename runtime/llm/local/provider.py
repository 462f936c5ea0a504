"""``provider: local``: a small open model on this machine, driven like any OpenAI-compatible endpoint.

    models:
      local:
        provider: local
        model: default            # or qwen2.5-coder-1.5b, or /path/to/model.gguf

:class:`LocalModelClient` is lazy: building it checks that the extra and the weights are installed
(config mistakes surface early) but starts nothing. The first :meth:`~LocalModelClient.complete`
finds the endpoint - where the Ray edge lends one (:mod:`troupe.runtime.llm.edge`), the node's shared
server actor; elsewhere a server owned by this process, one per
model, stopped at exit or by :func:`stop_local_servers` - and from then on every request goes
through a plain :class:`~troupe.runtime.llm.openai_client.OpenAIChatClient` at ``http://127.0.0.1:PORT/v1``.

Defaults suited to small models (a profile that sets these fields explicitly wins):
``parse_text_tool_calls: true`` (Qwen2.5-0.5B writes tool calls as JSON text, which llama.cpp
never turns into ``tool_calls``) and ``tools_after_results: false`` (after tool results it would
call the tool again forever if ``tools`` were still offered).

Server sizing comes from the environment: ``TROUPE_LOCAL_THREADS`` (default: the cores available less one),
``TROUPE_LOCAL_PARALLEL`` (request slots, default 2), ``TROUPE_LOCAL_CTX`` (tokens per slot, 4096).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError, ProviderError
from troupe.runtime.llm.edge import current_edge
from troupe.runtime.llm.factory import ProviderContext, openai_fallbacks
from troupe.runtime.llm.local.weights import LOCAL_EXTRA_HINT, check_model_available, model_key, short_name
from troupe.runtime.llm.openai_client import OpenAIChatClient
from troupe.runtime.llm.types import LLMClient, LLMRequest, LLMResponse, TokenCallback

if TYPE_CHECKING:
    import httpx2

    from troupe.runtime.llm.local.server import LocalServer

log = logging.getLogger(__name__)

MISSING_EXTRA = f"the local model needs the 'local' extra: {LOCAL_EXTRA_HINT}"
THREADS_ENV = "TROUPE_LOCAL_THREADS"
PARALLEL_ENV = "TROUPE_LOCAL_PARALLEL"
CTX_ENV = "TROUPE_LOCAL_CTX"


def require_xllamacpp(profile_name: str | None = None) -> None:
    """:class:`ConfigError` (with the pip command) when the inference engine is not installed."""
    if importlib.util.find_spec("xllamacpp") is None:
        prefix = f"model profile {profile_name!r}: " if profile_name else ""
        raise ConfigError(prefix + MISSING_EXTRA, profile=profile_name, install=LOCAL_EXTRA_HINT)


def server_options() -> dict[str, Any]:
    """``LocalServer`` sizing from ``TROUPE_LOCAL_*`` (unset -> the server's defaults)."""
    out: dict[str, Any] = {}
    for env, key in ((THREADS_ENV, "threads"), (PARALLEL_ENV, "parallel"), (CTX_ENV, "ctx_size")):
        raw = os.environ.get(env, "").strip()
        if not raw:
            continue
        try:
            out[key] = int(raw)
        except ValueError:
            raise ConfigError(f"{env}={raw!r} is not an integer", variable=env) from None
    return out


# --- where the server is ---------------------------------------------------------------------
_servers: dict[str, LocalServer] = {}
_servers_lock = threading.Lock()


def process_server(model: str | None) -> LocalServer:
    """This process's server for ``model`` (created, not started; one per model)."""
    from troupe.runtime.llm.local.server import LocalServer

    key = model_key(model)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = LocalServer(key, **server_options())
        return server


def _start_process_server(model: str | None) -> str:
    server = process_server(model)
    server.start()  # no-op while running; restarts a server that died
    assert server.base_url is not None
    return server.base_url


def stop_local_servers() -> None:
    """Stop every local model server this process started (the runtime calls it at shutdown)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - shutdown must go on
            log.exception("stopping local model server %r failed", server)


async def resolve_endpoint(model: str | None) -> str:
    """The base URL (``http://127.0.0.1:PORT``) of a running server for ``model``: the node's shared
    one where the Ray edge lends it (:mod:`troupe.runtime.llm.edge`), else this process's own."""
    shared = current_edge().local_endpoint
    if shared is not None:
        return await shared(model_key(model), server_options())
    return await asyncio.to_thread(_start_process_server, model)


# --- the client ------------------------------------------------------------------------------
class LocalModelClient:
    """An :class:`~troupe.runtime.llm.types.LLMClient` for ``provider: local`` (see the module docstring)."""

    def __init__(
        self,
        profile: ModelProfile,
        *,
        profile_name: str = "local",
        fallbacks: Sequence[tuple[str, ModelProfile]] = (),
        clock: Clock = SYSTEM_CLOCK,
        http_client: httpx2.AsyncClient | None = None,
        resolver: Any = None,
    ) -> None:
        self.profile = profile
        self.profile_name = profile_name
        self.model_name = short_name(profile.model)
        self.fallbacks = list(fallbacks)
        self.clock = clock
        self._http_client = http_client
        self._resolve = resolver or resolve_endpoint
        """``async (model) -> base URL``; tests inject one."""
        self._inner: OpenAIChatClient | None = None
        self._url: str | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def base_url(self) -> str | None:
        """The server's URL once resolved (``http://127.0.0.1:PORT``)."""
        return self._url

    def openai_profile(self, base_url: str) -> ModelProfile:
        """The OpenAI-compatible profile used against the server at ``base_url``."""
        explicit = self.profile.model_fields_set
        return self.profile.model_copy(
            update={
                "provider": "openai",
                "base_url": base_url.rstrip("/") + "/v1",
                "model": self.model_name,
                "api_key_env": None,
                "fallbacks": [],
                "parse_text_tool_calls": (
                    self.profile.parse_text_tool_calls if "parse_text_tool_calls" in explicit else True
                ),
                "tools_after_results": (
                    self.profile.tools_after_results if "tools_after_results" in explicit else False
                ),
            }
        )

    async def _client(self, *, refresh: bool = False) -> OpenAIChatClient:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._inner is None or refresh:
                url = await self._resolve(self.profile.model)
                if self._inner is not None and url == self._url:
                    return self._inner
                old, self._inner = self._inner, OpenAIChatClient(
                    self.openai_profile(url),
                    profile_name=self.profile_name,
                    fallbacks=self.fallbacks,
                    clock=self.clock,
                    http_client=self._http_client,
                )
                self._url = url
                if old is not None:
                    await old.aclose()
            return self._inner

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        inner = await self._client()
        try:
            return await inner.complete(request, on_token=on_token)
        except ProviderError:
            # The server may have died and been restarted elsewhere (a new port): one more try
            # there. Same URL -> the error stands (a slow or failing model is not retried twice).
            url = self._url
            try:
                fresh = await self._client(refresh=True)
            except ConfigError:
                raise
            if self._url == url:
                raise
            log.info("local model server moved from %s to %s; retrying once", url, self._url)
            return await fresh.complete(request, on_token=on_token)

    async def aclose(self) -> None:
        """Close this client's HTTP connections (the shared server keeps running)."""
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None


def build_local_client(ctx: ProviderContext) -> LLMClient:
    """The ``provider: local`` factory: checks the extra and the weights now, starts nothing."""
    require_xllamacpp(ctx.profile_name)
    try:
        check_model_available(ctx.profile.model)
    except ConfigError as e:
        raise ConfigError(
            f"model profile {ctx.profile_name!r}: {e.message}", **{**e.fields, "profile": ctx.profile_name}
        ) from None
    return LocalModelClient(ctx.profile, profile_name=ctx.profile_name, fallbacks=openai_fallbacks(ctx), clock=ctx.clock)


__all__ = [
    "CTX_ENV",
    "MISSING_EXTRA",
    "PARALLEL_ENV",
    "THREADS_ENV",
    "LocalModelClient",
    "build_local_client",
    "process_server",
    "require_xllamacpp",
    "resolve_endpoint",
    "server_options",
    "stop_local_servers",
]
