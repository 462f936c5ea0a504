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
makes every request take a lease from the endpoint's shared limiter (:mod:`troupe.runtime.llm.ratelimit`);
an endpoint that keeps failing is skipped for a while by its circuit breaker
(:mod:`troupe.runtime.llm.breaker`); ``retry_deadline_s`` budgets a profile's retries by time.
The reasons are in :mod:`troupe.runtime.llm.faults`, the key and remote guards in
:mod:`troupe.runtime.llm.access`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ProviderError, sentence
from troupe.runtime.llm.access import (
    BLOCK_REMOTE_ENV,
    DEFAULT_BASE_URL,
    check_remote_allowed,
    endpoint_url,
    is_loopback_url,
    remote_models_blocked,
    resolve_api_key,
)
from troupe.runtime.llm.breaker import BREAKERS, BreakerBoard, CircuitBreaker
from troupe.runtime.llm.faults import REASONS, RETRIED, Fault, backoff, classify
from troupe.runtime.llm.ratelimit import Limiter, lease, limiter_for
from troupe.runtime.llm.repair import repair_arguments
from troupe.runtime.llm.scripted import estimate_usage
from troupe.runtime.llm.text_tools import parse_text_tool_calls
from troupe.runtime.llm.types import TOOL_ERROR_PREFIX, LLMRequest, LLMResponse, TokenCallback, ToolCall, Usage
from troupe.runtime.redact import redact_text

log = logging.getLogger(__name__)


@dataclass
class _Endpoint:
    """One profile with its own SDK client."""

    name: str
    profile: ModelProfile
    base_url: str
    sdk: openai.AsyncOpenAI
    limiter: Limiter | None = None
    """The endpoint's shared limiter (set on first request, when ``rate_limit`` is configured)."""
    breaker: CircuitBreaker | None = None
    """The endpoint's circuit breaker (:mod:`troupe.runtime.llm.breaker`), unless the profile turned it off."""


@dataclass
class _Attempt:
    """What went wrong with one profile, for the final error and for logs (never holds secrets)."""

    profile: str
    error: str
    status: int | None = None
    reason: str = "server_error"
    skipped: bool = False
    """Not tried: its circuit breaker was open."""


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
        breakers: BreakerBoard | None = None,
    ) -> None:
        self.clock = clock
        self.model_name = profile.model
        self._breakers = breakers or BREAKERS
        self._endpoints = [
            self._make_endpoint(name, p, http_client) for name, p in [(profile_name, profile), *fallbacks]
        ]

    def _make_endpoint(self, name: str, profile: ModelProfile, http_client: httpx2.AsyncClient | None) -> _Endpoint:
        base_url = endpoint_url(profile)
        check_remote_allowed(name, base_url)
        sdk = openai.AsyncOpenAI(
            api_key=resolve_api_key(name, profile),
            base_url=base_url,
            timeout=profile.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        breaker = self._breakers.get(base_url, profile.circuit_breaker) if profile.circuit_breaker else None
        return _Endpoint(name=name, profile=profile, base_url=base_url, sdk=sdk, breaker=breaker)

    @property
    def profiles(self) -> list[str]:
        """Profile names in the order they are tried."""
        return [e.name for e in self._endpoints]

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        attempts: list[_Attempt] = []
        # An endpoint whose breaker is open is skipped while another can be tried; with every one
        # open they are all tried anyway (a breaker routes around a dead endpoint, it does not fail
        # a request that has nowhere else to go).
        ready = [e for e in self._endpoints if e.breaker is None or e.breaker.allows()]
        for i, endpoint in enumerate(self._endpoints):
            if ready and endpoint not in ready:
                assert endpoint.breaker is not None
                log.info("model profile %r skipped: %s", endpoint.name, endpoint.breaker.describe())
                attempts.append(_Attempt(endpoint.name, f"skipped: {endpoint.breaker.describe()}", None,
                                         endpoint.breaker.last_reason or "unreachable", skipped=True))
                continue
            check_remote_allowed(endpoint.name, endpoint.base_url)
            try:
                # A breaker that trips under this request cuts its retries short only when a
                # fallback can take over; a lone endpoint keeps its retries.
                fallback = any(e in ready for e in self._endpoints[i + 1:])
                return await self._complete_with_retries(endpoint, request, on_token, attempts, fallback)
            except Fault:
                continue
        tried = "; ".join(f"{a.profile!r}: {a.error}" for a in attempts)
        last = next((a for a in reversed(attempts) if not a.skipped), attempts[-1])
        # A request too long for one model is too long, whatever a fallback said after it: the
        # caller's remedy (compacting) is the same.
        reason = "context_length" if any(a.reason == "context_length" for a in attempts) else last.reason
        # Not chained to the SDK's exception: its text carries the raw response body, which can
        # echo the API key, and chained tracebacks end up in logs and across the Ray boundary.
        raise ProviderError(
            f"{reason}: model request failed on every profile tried ({', '.join(repr(e.name) for e in self._endpoints)}); "
            f"{sentence(tried)} Last error: {last.error}",
            profiles=[e.name for e in self._endpoints],
            status=last.status,
            reason=reason,
            reasons={a.profile: a.reason for a in attempts},
            skipped=[a.profile for a in attempts if a.skipped],
        ) from None

    async def _complete_with_retries(
        self,
        endpoint: _Endpoint,
        request: LLMRequest,
        on_token: TokenCallback | None,
        attempts: list[_Attempt],
        fallback: bool = False,
    ) -> LLMResponse:
        profile = endpoint.profile
        breaker = endpoint.breaker
        if profile.rate_limit is not None and endpoint.limiter is None:
            endpoint.limiter = limiter_for(endpoint.base_url, profile.rate_limit, clock=self.clock)
        started = self.clock.monotonic()
        retry = 0
        while True:
            try:
                async with lease(endpoint.limiter):
                    if breaker is not None:
                        breaker.begin()
                    try:
                        response = await self._complete_once(endpoint, request, on_token)
                    except Fault as fault:
                        if breaker is not None:
                            breaker.failed(fault.reason)
                        if fault.retry_after is not None and endpoint.limiter is not None:
                            # The server asked everyone to wait, not only us: hold the endpoint
                            # before our slot is given back, so no waiter slips in first.
                            await endpoint.limiter.hold(min(fault.retry_after, profile.max_backoff_s))
                        raise
                    if breaker is not None:
                        breaker.succeeded()
                    return response
            except Fault as fault:
                delay = backoff(profile, retry, fault.retry_after)
                if not fault.retryable or not _may_retry(profile, retry, self.clock.monotonic() + delay - started) or (
                        fallback and breaker is not None and breaker.state == "open"):  # tripped: fail over now
                    attempts.append(_Attempt(endpoint.name, fault.error, fault.status, fault.reason))
                    raise
                retry += 1
                log.info("model profile %r: %s: %s; retry %d in %.2fs", endpoint.name, fault.reason, fault.error,
                         retry, delay)
                await self.clock.sleep(delay)

    async def _complete_once(
        self, endpoint: _Endpoint, request: LLMRequest, on_token: TokenCallback | None
    ) -> LLMResponse:
        kwargs = _request_kwargs(endpoint.profile, request)
        state = _StreamState(model=endpoint.profile.model)
        try:
            stream = await endpoint.sdk.chat.completions.create(**kwargs)
        except openai.APIError as e:
            raise classify(e, where=_where(endpoint), timeout_s=endpoint.profile.timeout_s, streaming=False) from None
        chunks = 0
        try:
            async with stream:
                async for chunk in stream:
                    chunks += 1
                    _absorb(state, chunk, on_token)
        except openai.APIError as e:
            raise classify(e, where=_where(endpoint), timeout_s=endpoint.profile.timeout_s, streaming=chunks > 0) from None
        except (ValueError, TypeError, AttributeError) as e:  # a chunk that is not JSON, or not a chunk
            raise Fault("malformed_response", redact_text(
                f"unreadable stream chunk from {_where(endpoint)} after {chunks} good chunk(s): "
                f"{type(e).__name__}: {str(e)[:200]}")) from None
        if state.finish_reason is None:
            # Every OpenAI-compatible server ends a complete answer with a finish reason; without
            # one the stream was cut (a proxy, a crashed server) and the answer may be half of one.
            raise Fault("interrupted", f"the stream from {_where(endpoint)} ended after {chunks} chunk(s) "
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
        if request.parallel_tool_calls is False:
            kwargs["parallel_tool_calls"] = False
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


def _may_retry(profile: ModelProfile, retries: int, elapsed_after_wait: float) -> bool:
    """Another attempt is allowed: within ``retry_deadline_s`` when the profile sets one (time, not
    count), else while fewer than ``max_retries`` retries were made."""
    if profile.retry_deadline_s is not None:
        return elapsed_after_wait <= profile.retry_deadline_s
    return retries < profile.max_retries


def _where(endpoint: _Endpoint) -> str:
    return f"{endpoint.profile.model} at {endpoint.base_url}"


__all__ = [
    "BLOCK_REMOTE_ENV",
    "DEFAULT_BASE_URL",
    "REASONS",
    "RETRIED",
    "OpenAIChatClient",
    "check_remote_allowed",
    "is_loopback_url",
    "remote_models_blocked",
    "repair_arguments",
    "resolve_api_key",
]
