"""The OpenAI-compatible client: streaming, tool calls, usage, retries and failover across profiles.

Retries are ours, not the SDK's (``max_retries=0`` there), so that backoff sleeps go through an
injectable :class:`~troupe.runtime.clock.Clock` and the failover order, Retry-After handling and error
text are the same for every OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).

Every failure is sorted into a *reason* (:data:`REASONS`) that decides what happens next and that
the final :class:`~troupe.runtime.errors.ProviderError` carries (``fields["reason"]``, and first in its
message): ``rate_limited``, ``timeout``, ``unreachable``, ``interrupted`` (the stream stopped
halfway), ``malformed_response`` (a chunk that is not valid JSON) and ``server_error`` are retried
with backoff and then failed over; ``context_length``, ``quota_exceeded``, ``auth`` and
``bad_request`` are not retried (a fallback profile is still tried), and the agent loop answers
``context_length`` by compacting its context and retrying the round. A profile's ``rate_limit``
makes every request take a lease from the endpoint's shared limiter (:mod:`troupe.runtime.llm.ratelimit`).
"""

from __future__ import annotations

import ast
import ipaddress
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2
import openai

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError, ProviderError
from troupe.runtime.llm.ratelimit import Limiter, lease, limiter_for
from troupe.runtime.llm.scripted import estimate_usage
from troupe.runtime.llm.text_tools import parse_text_tool_calls
from troupe.runtime.llm.types import TOOL_ERROR_PREFIX, LLMRequest, LLMResponse, TokenCallback, ToolCall, Usage
from troupe.runtime.redact import redact_text, register_secret

log = logging.getLogger(__name__)

BLOCK_REMOTE_ENV = "TROUPE_BLOCK_REMOTE_MODELS"
"""Set to ``1`` (tests, CI) to refuse any model endpoint that is not on this machine."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"
"""Sent when a profile names no ``api_key_env``: local servers ignore it, the SDK insists on one."""
REASONS: Final = (
    "rate_limited", "timeout", "unreachable", "interrupted", "malformed_response", "server_error",
    "context_length", "quota_exceeded", "auth", "bad_request",
)
"""Why a model request failed (``ProviderError.fields["reason"]``, the ``llm.error`` event's status)."""
RETRIED: Final = frozenset({"rate_limited", "timeout", "unreachable", "interrupted", "malformed_response", "server_error"})
_CONTEXT_LENGTH = re.compile(
    r"context[ _]length|context (?:size|window)|maximum context|too many tokens|prompt is too long|exceed_context",
    re.IGNORECASE,
)


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
    limiter: Limiter | None = None
    """The endpoint's shared limiter (set on first request, when ``rate_limit`` is configured)."""


@dataclass
class _Attempt:
    """What went wrong with one profile, for the final error and for logs (never holds secrets)."""

    profile: str
    error: str
    status: int | None = None
    reason: str = "server_error"


class _Fault(Exception):
    """One failed request, sorted: why, whether to retry, and how long the server asked us to wait."""

    def __init__(self, reason: str, error: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.reason in RETRIED


@dataclass
class _StreamState:
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Usage | None = None
    model: str = ""
    finish_reason: str | None = None


class OpenAIChatClient:
    """An :class:`~troupe.runtime.llm.types.LLMClient` over ``openai.AsyncOpenAI`` with failover.

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
            except _Fault:
                continue
        tried = "; ".join(f"{a.profile!r}: {a.error}" for a in attempts)
        last = attempts[-1]
        # A request too long for one model is too long, whatever a fallback said after it: the
        # caller's remedy (compacting) is the same.
        reason = "context_length" if any(a.reason == "context_length" for a in attempts) else last.reason
        # Not chained to the SDK's exception: its text carries the raw response body, which can
        # echo the API key, and chained tracebacks end up in logs and across the Ray boundary.
        raise ProviderError(
            f"{reason}: model request failed on every profile tried ({', '.join(repr(e.name) for e in self._endpoints)}); "
            f"{tried}. Last error: {last.error}",
            profiles=[e.name for e in self._endpoints],
            status=last.status,
            reason=reason,
            reasons={a.profile: a.reason for a in attempts},
        ) from None

    async def _complete_with_retries(
        self,
        endpoint: _Endpoint,
        request: LLMRequest,
        on_token: TokenCallback | None,
        attempts: list[_Attempt],
    ) -> LLMResponse:
        profile = endpoint.profile
        if profile.rate_limit is not None and endpoint.limiter is None:
            endpoint.limiter = limiter_for(endpoint.base_url, profile.rate_limit, clock=self.clock)
        retry = 0
        while True:
            try:
                async with lease(endpoint.limiter):
                    try:
                        return await self._complete_once(endpoint, request, on_token)
                    except _Fault as fault:
                        if fault.retry_after is not None and endpoint.limiter is not None:
                            # The server asked everyone to wait, not only us: hold the endpoint
                            # before our slot is given back, so no waiter slips in first.
                            await endpoint.limiter.hold(min(fault.retry_after, profile.max_backoff_s))
                        raise
            except _Fault as fault:
                if not fault.retryable or retry >= profile.max_retries:
                    attempts.append(_Attempt(endpoint.name, fault.error, fault.status, fault.reason))
                    raise
                delay = _backoff(profile, retry, fault.retry_after)
                retry += 1
                log.info(
                    "model profile %r: %s: %s; retry %d/%d in %.2fs",
                    endpoint.name, fault.reason, fault.error, retry, profile.max_retries, delay,
                )
                await self.clock.sleep(delay)

    async def _complete_once(
        self, endpoint: _Endpoint, request: LLMRequest, on_token: TokenCallback | None
    ) -> LLMResponse:
        kwargs = _request_kwargs(endpoint.profile, request)
        state = _StreamState(model=endpoint.profile.model)
        try:
            stream = await endpoint.sdk.chat.completions.create(**kwargs)
        except openai.APIError as e:
            raise _classify(e, endpoint, streaming=False) from None
        chunks = 0
        try:
            async with stream:
                async for chunk in stream:
                    chunks += 1
                    _absorb(state, chunk, on_token)
        except openai.APIError as e:
            raise _classify(e, endpoint, streaming=chunks > 0) from None
        except (ValueError, TypeError, AttributeError) as e:  # a chunk that is not JSON, or not a chunk
            raise _Fault("malformed_response", redact_text(
                f"unreadable stream chunk from {_where(endpoint)} after {chunks} good chunk(s): "
                f"{type(e).__name__}: {str(e)[:200]}")) from None
        if state.finish_reason is None:
            # Every OpenAI-compatible server ends a complete answer with a finish reason; without
            # one the stream was cut (a proxy, a crashed server) and the answer may be half of one.
            raise _Fault("interrupted", f"the stream from {_where(endpoint)} ended after {chunks} chunk(s) "
                                        "without a finish reason (cut off halfway)")
        response = LLMResponse(
            text="".join(state.text),
            tool_calls=[
                ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=repair_arguments("".join(c["args"])))
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


def _where(endpoint: _Endpoint) -> str:
    return f"{endpoint.profile.model} at {endpoint.base_url}"


def _classify(e: openai.APIError, endpoint: _Endpoint, *, streaming: bool) -> _Fault:
    """Sort an SDK error into a reason (see the module docstring), with redacted text."""
    where = _where(endpoint)
    if isinstance(e, openai.APITimeoutError):
        return _Fault("timeout", f"timed out after {endpoint.profile.timeout_s:g}s ({where})")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        if streaming:
            return _Fault("interrupted", redact_text(f"connection to {where} lost in the middle of the stream{detail}"))
        return _Fault("unreachable", redact_text(f"cannot connect to {where}{detail}"))
    status = e.status_code if isinstance(e, openai.APIStatusError) else None
    code, kind, message = _error_body(e)
    if status is not None:
        text = f"HTTP {status} from {where}: {message}"
    else:  # an error the server sent as an event in the middle of the stream
        text = f"error in the stream from {where}: {message}"
    text = redact_text(text)
    marks = f"{code} {kind}"
    if status in (400, 413, None) and (_CONTEXT_LENGTH.search(marks) or _CONTEXT_LENGTH.search(message)):
        return _Fault("context_length", text, status=status)
    if status == 429 or "rate_limit" in marks:
        if "insufficient_quota" in marks:
            return _Fault("quota_exceeded", text, status=status)
        return _Fault("rate_limited", text, status=status, retry_after=_retry_after(e))
    if status is None or status >= 500:
        return _Fault("server_error", text, status=status, retry_after=_retry_after(e))
    if status == 408:
        return _Fault("timeout", text, status=status, retry_after=_retry_after(e))
    if status in (401, 403):
        return _Fault("auth", text, status=status)
    return _Fault("bad_request", text, status=status)


def _error_body(e: openai.APIError) -> tuple[str, str, str]:
    """``(code, type, message)`` from the error body OpenAI-compatible servers send."""
    body = e.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return "", "", str(e.message)[:500]
    message = inner.get("message")
    return (str(inner.get("code") or ""), str(inner.get("type") or ""),
            (message if isinstance(message, str) else str(e.message))[:500])


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


def _backoff(profile: ModelProfile, retry: int, server: float | None) -> float:
    """Retry-After when the server sent it, else ``backoff_s`` doubling; both capped at
    ``max_backoff_s`` (past that, failing over beats waiting)."""
    delay = server if server is not None else profile.backoff_s * (2**retry)
    return min(delay, profile.max_backoff_s)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def repair_arguments(text: str) -> str:
    """Tool-call arguments as the model wrote them, or a repaired JSON object when the repair is
    unambiguous: empty -> ``{}``, a fenced block, trailing text after a complete object, a Python
    literal (single quotes, ``True``). Cut-off JSON is left alone (completing it would run a tool on
    half its input): the call then gets a model-visible error and the model writes it again."""
    if not text.strip():
        return "{}"
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    candidate = text.strip()
    if fenced := _FENCE.match(candidate):
        candidate = fenced.group(1)
    try:
        value, end = json.JSONDecoder().raw_decode(candidate)
        if isinstance(value, dict) and candidate[end:].strip(" \n\t}") == "":
            return json.dumps(value, ensure_ascii=False)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(candidate)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            return text
    return text


__all__ = [
    "BLOCK_REMOTE_ENV",
    "REASONS",
    "RETRIED",
    "OpenAIChatClient",
    "check_remote_allowed",
    "is_loopback_url",
    "remote_models_blocked",
    "repair_arguments",
    "resolve_api_key",
]
