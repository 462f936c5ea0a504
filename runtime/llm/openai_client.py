"""The OpenAI-compatible client: streaming, tool calls, usage, retries and failover across profiles.

Retries are ours, not the SDK's (``max_retries=0`` there), so that backoff sleeps go through an
injectable :class:`~runtime.clock.Clock` and the failover order, Retry-After handling and error
text are the same for every OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import ModelProfile
from runtime.errors import ConfigError, ProviderError
from runtime.llm.scripted import estimate_usage
from runtime.llm.text_tools import parse_text_tool_calls
from runtime.llm.types import TOOL_ERROR_PREFIX, LLMRequest, LLMResponse, TokenCallback, ToolCall, Usage
from runtime.redact import redact_text, register_secret

log = logging.getLogger(__name__)

BLOCK_REMOTE_ENV = "TROUPE_BLOCK_REMOTE_MODELS"
"""Set to ``1`` (tests, CI) to refuse any model endpoint that is not on this machine."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"
"""Sent when a profile names no ``api_key_env``: local servers ignore it, the SDK insists on one."""
_RETRY_STATUS = frozenset({408, 429})


def remote_models_blocked() -> bool:
    return os.environ.get(BLOCK_REMOTE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_loopback_url(url: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` - endpoints that cannot leave the machine."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_remote_allowed(profile_name: str, base_url: str) -> None:
    """The ALLOW_MODEL_REQUESTS-style guard: with ``TROUPE_BLOCK_REMOTE_MODELS=1`` only loopback
    endpoints are allowed, so no test can reach (and pay for) a real model by accident."""
    if remote_models_blocked() and not is_loopback_url(base_url):
        raise ConfigError(
            f"model profile {profile_name!r} points at {base_url}, which is not on this machine, and "
            f"{BLOCK_REMOTE_ENV}=1 forbids remote model requests (the guard that keeps tests off real "
            f"models). Use a scripted/function profile or a loopback endpoint, or unset {BLOCK_REMOTE_ENV}.",
            profile=profile_name,
            base_url=base_url,
        )


def resolve_api_key(profile_name: str, profile: ModelProfile) -> str:
    """The key from ``os.environ[profile.api_key_env]``, registered for redaction."""
    if not profile.api_key_env:
        return NO_KEY
    key = os.environ.get(profile.api_key_env)
    if not key:
        raise ConfigError(
            f"model profile {profile_name!r} reads its API key from the environment variable "
            f"{profile.api_key_env!r}, which is not set; export {profile.api_key_env}=... (keys never go in team files)",
            profile=profile_name,
            variable=profile.api_key_env,
        )
    register_secret(key)
    return key


@dataclass
class _Endpoint:
    """One profile with its own SDK client."""

    name: str
    profile: ModelProfile
    base_url: str
    sdk: openai.AsyncOpenAI


@dataclass
class _Attempt:
    """What went wrong with one profile, for the final error and for logs (never holds secrets)."""

    profile: str
    error: str
    status: int | None = None


@dataclass
class _StreamState:
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Usage | None = None
    model: str = ""
    finish_reason: str | None = None


class OpenAIChatClient:
    """An :class:`~runtime.llm.types.LLMClient` over ``openai.AsyncOpenAI`` with failover.

    Each profile (the primary, then ``fallbacks`` in order) is tried with its own retries; the
    response's ``profile`` says which one answered. ``http_client`` exists for tests and proxies.
    """

    def __init__(
        self,
        profile: ModelProfile,
        *,
        profile_name: str = "default",
        fallbacks: Sequence[tuple[str, ModelProfile]] = (),
        clock: Clock = SYSTEM_CLOCK,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.clock = clock
        self.model_name = profile.model
        self._endpoints = [
            self._make_endpoint(name, p, http_client) for name, p in [(profile_name, profile), *fallbacks]
        ]

    @staticmethod
    def _make_endpoint(name: str, profile: ModelProfile, http_client: httpx2.AsyncClient | None) -> _Endpoint:
        base_url = profile.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        check_remote_allowed(name, base_url)
        sdk = openai.AsyncOpenAI(
            api_key=resolve_api_key(name, profile),
            base_url=base_url,
            timeout=profile.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        return _Endpoint(name=name, profile=profile, base_url=base_url, sdk=sdk)

    @property
    def profiles(self) -> list[str]:
        """Profile names in the order they are tried."""
        return [e.name for e in self._endpoints]

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        attempts: list[_Attempt] = []
        for endpoint in self._endpoints:
            check_remote_allowed(endpoint.name, endpoint.base_url)
            try:
                return await self._complete_with_retries(endpoint, request, on_token, attempts)
            except openai.APIError:
                continue
        tried = "; ".join(f"{a.profile!r}: {a.error}" for a in attempts)
        last = attempts[-1]
        # Not chained to the SDK's exception: its text carries the raw response body, which can
        # echo the API key, and chained tracebacks end up in logs and across the Ray boundary.
        raise ProviderError(
            f"model request failed on every profile tried ({', '.join(repr(e.name) for e in self._endpoints)}); "
            f"{tried}. Last error: {last.error}",
            profiles=[e.name for e in self._endpoints],
            status=last.status,
        ) from None

    async def _complete_with_retries(
        self,
        endpoint: _Endpoint,
        request: LLMRequest,
        on_token: TokenCallback | None,
        attempts: list[_Attempt],
    ) -> LLMResponse:
        profile = endpoint.profile
        retry = 0
        while True:
            try:
                return await self._complete_once(endpoint, request, on_token)
            except openai.APIError as e:
                status = getattr(e, "status_code", None)
                error = _describe_error(e, endpoint)
                if not _retryable(e) or retry >= profile.max_retries:
                    attempts.append(_Attempt(endpoint.name, error, status))
                    raise
                delay = _backoff(profile, retry, e)
                retry += 1
                log.info(
                    "model profile %r: %s; retry %d/%d in %.2fs",
                    endpoint.name, error, retry, profile.max_retries, delay,
                )
                await self.clock.sleep(delay)

    async def _complete_once(
        self, endpoint: _Endpoint, request: LLMRequest, on_token: TokenCallback | None
    ) -> LLMResponse:
        kwargs = _request_kwargs(endpoint.profile, request)
        state = _StreamState(model=endpoint.profile.model)
        stream = await endpoint.sdk.chat.completions.create(**kwargs)
        async with stream:
            async for chunk in stream:
                _absorb(state, chunk, on_token)
        response = LLMResponse(
            text="".join(state.text),
            tool_calls=[
                ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments="".join(c["args"]) or "{}")
                for i, c in sorted(state.calls.items())
            ],
            model=state.model,
            finish_reason=state.finish_reason,
            profile=endpoint.name,
        )
        declared = {t["function"]["name"]: t["function"].get("parameters") or {} for t in kwargs.get("tools", [])}
        if endpoint.profile.parse_text_tool_calls and not response.tool_calls and response.text and declared:
            parsed = parse_text_tool_calls(response.text, declared)
            if parsed:
                response.tool_calls, response.text, response.finish_reason = parsed, "", "tool_calls"
        # Servers that ignore include_usage still get counted, so budgets keep working.
        response.usage = state.usage or estimate_usage(request, response)
        return response

    async def aclose(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.sdk.close()


ANSWER_NUDGE = "Now answer the question in plain text, using every one of the tool results above. Do not write a tool call."
"""Sent after tool results when a profile withholds tools (``tools_after_results: false``)."""


def _trailing_tool_results(request: LLMRequest) -> list[str]:
    out: list[str] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        out.append(message.content or "")
    return out


def _is_error(result: str) -> bool:
    return result.startswith(TOOL_ERROR_PREFIX)


def _request_kwargs(profile: ModelProfile, request: LLMRequest) -> dict[str, Any]:
    messages = [m.to_openai() for m in request.messages]
    kwargs: dict[str, Any] = {
        "model": profile.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    results = _trailing_tool_results(request)
    # Weak models loop on tools: after successful results, ask for the answer without offering
    # tools. After a failed call keep the tools, so the model can correct its arguments.
    withhold = bool(results) and not profile.tools_after_results and not any(_is_error(r) for r in results)
    if request.tools and not withhold:
        kwargs["tools"] = [t.to_openai() for t in request.tools]
        if request.tool_choice:
            kwargs["tool_choice"] = request.tool_choice
    if request.tools and withhold:
        messages.append({"role": "user", "content": ANSWER_NUDGE})
    temperature = request.temperature if request.temperature is not None else profile.temperature
    if temperature is not None:
        kwargs["temperature"] = temperature
    max_tokens = request.max_tokens if request.max_tokens is not None else profile.max_tokens
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if profile.extra_body:
        kwargs["extra_body"] = dict(profile.extra_body)
    return kwargs


def _absorb(state: _StreamState, chunk: Any, on_token: TokenCallback | None) -> None:
    """Fold one stream chunk into ``state``: text deltas, tool-call fragments keyed by ``index``
    (id and name arrive once, arguments in pieces), the finish reason, and usage (last chunk)."""
    if chunk.model:
        state.model = chunk.model
    if chunk.usage is not None:
        state.usage = Usage(
            tokens_in=chunk.usage.prompt_tokens or 0, tokens_out=chunk.usage.completion_tokens or 0
        )
    for choice in chunk.choices or []:
        if choice.index != 0:
            continue
        delta = choice.delta
        if delta is not None:
            if delta.content:
                state.text.append(delta.content)
                if on_token is not None:
                    on_token(delta.content)
            for tc in delta.tool_calls or []:
                slot = state.calls.setdefault(tc.index, {"id": None, "name": "", "args": []})
                if tc.id and not slot["id"]:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name and not slot["name"]:
                        slot["name"] = tc.function.name
                    if tc.function.arguments:
                        slot["args"].append(tc.function.arguments)
        if choice.finish_reason:
            state.finish_reason = choice.finish_reason


def _retryable(e: openai.APIError) -> bool:
    if isinstance(e, openai.APIStatusError):
        return e.status_code in _RETRY_STATUS or e.status_code >= 500
    # Connection errors, timeouts, and errors the server reports in the middle of a stream.
    return True


def _retry_after(e: openai.APIError) -> float | None:
    if not isinstance(e, openai.APIStatusError):
        return None
    headers = e.response.headers
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def _backoff(profile: ModelProfile, retry: int, e: openai.APIError) -> float:
    """Retry-After when the server sent it, else ``backoff_s`` doubling; both capped at
    ``max_backoff_s`` (past that, failing over beats waiting)."""
    server = _retry_after(e)
    delay = server if server is not None else profile.backoff_s * (2**retry)
    return min(delay, profile.max_backoff_s)


def _describe_error(e: openai.APIError, endpoint: _Endpoint) -> str:
    where = f"{endpoint.profile.model} at {endpoint.base_url}"
    if isinstance(e, openai.APITimeoutError):
        text = f"timed out after {endpoint.profile.timeout_s:g}s ({where})"
    elif isinstance(e, openai.APIConnectionError):
        cause = e.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        text = f"cannot connect to {where}{detail}"
    elif isinstance(e, openai.APIStatusError):
        text = f"HTTP {e.status_code} from {where}: {_status_detail(e)}"
    else:
        text = f"error from {where}: {e.message}"
    return redact_text(text)


def _status_detail(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"][:500]
    return str(e.message)[:500]


__all__ = [
    "BLOCK_REMOTE_ENV",
    "OpenAIChatClient",
    "check_remote_allowed",
    "is_loopback_url",
    "remote_models_blocked",
    "resolve_api_key",
]
