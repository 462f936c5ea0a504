"""Answering an MCP server's sampling requests (``sampling/createMessage``) with our own models.

A server that samples borrows the client's LLM, so the answer is paid for by the calling agent's
budget and must be attributable to it: the manager hands the sampler the :class:`CallerInfo` of
the call the request belongs to. Sampling is off unless the server's config turns it on, and the
refusal says how to turn it on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.runtime.llm.types import ChatMessage, LLMClient, LLMRequest, LLMResponse
from troupe.tools.mcp.content import render_block
from troupe.tools.mcp.models import CallerInfo

logger = logging.getLogger(__name__)

Sampler = Callable[[str, McpServerConfig, mt.CreateMessageRequestParams, CallerInfo | None], Awaitable[mt.CreateMessageResult]]
"""``(server, cfg, params, caller) -> result``: answers one sampling request."""

USAGE_META_KEY = "troupe/usage"
"""Where a sampler may put ``{"tokens_in", "tokens_out", "profile"}`` in the result's ``_meta``;
the manager moves it into the call's sampling summary and strips it before answering the server."""

_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "max_tokens": "maxTokens"}


def disabled_message(server: str) -> str:
    return f"sampling is not enabled for MCP server {server!r}; set sampling: true in its config"


def no_sampler_message(server: str) -> str:
    return (f"MCP server {server!r} asked for sampling, but this MCP manager has no sampler "
            "(build the McpManager with sampler=llm_sampler(...))")


def _message_text(message: mt.SamplingMessage) -> str:
    parts = []
    for block in message.content_as_list:
        if isinstance(block, mt.TextContent):
            parts.append(block.text)
        else:
            parts.extend(render_block(block)[0])
    return "\n".join(parts)


def to_llm_request(params: mt.CreateMessageRequestParams, cfg: McpServerConfig) -> LLMRequest:
    """Our request for a server's ``createMessage`` params: text content only (other blocks become a
    descriptive line), ``max_tokens`` capped by ``cfg.sampling_max_tokens``. Stop sequences, model
    preferences and sampling-with-tools are not passed on."""
    messages = [ChatMessage(role="system", content=params.system_prompt)] if params.system_prompt else []
    messages += [ChatMessage(role=m.role, content=_message_text(m)) for m in params.messages]
    return LLMRequest(
        messages=messages,
        temperature=params.temperature,
        max_tokens=min(params.max_tokens, cfg.sampling_max_tokens),
    )


def to_create_message_result(response: LLMResponse, profile: str | None) -> mt.CreateMessageResult:
    usage = {"tokens_in": response.usage.tokens_in, "tokens_out": response.usage.tokens_out, "profile": profile}
    return mt.CreateMessageResult(
        role="assistant",
        content=mt.TextContent(type="text", text=response.text),
        model=response.model or profile or "unknown",
        stop_reason=_STOP_REASONS.get(response.finish_reason or "", response.finish_reason),
        _meta={USAGE_META_KEY: usage},
    )


def pick_profile(cfg: McpServerConfig, caller: CallerInfo | None, default_profile: str | None) -> str | None:
    """``cfg.sampling`` when it names a profile, else the caller's profile, else the default."""
    if isinstance(cfg.sampling, str):
        return cfg.sampling
    if caller is not None and caller.sampling_profile:
        return caller.sampling_profile
    return default_profile


def llm_sampler(build_llm: Callable[[str], LLMClient], default_profile: str | None = None) -> Sampler:
    """A :data:`Sampler` that answers with ``build_llm(profile).complete(...)``.

    ``build_llm`` owns the clients it returns (cache them, or close them yourself): the sampler
    never closes one, because a shared client may still be in use by the agent.
    """

    async def sample(server: str, cfg: McpServerConfig, params: mt.CreateMessageRequestParams,
                     caller: CallerInfo | None) -> mt.CreateMessageResult:
        profile = pick_profile(cfg, caller, default_profile)
        if profile is None:
            raise LookupError(f"no model profile to answer MCP server {server!r}'s sampling request: set "
                              "sampling: <profile> in its config, or give the caller a sampling profile")
        response = await build_llm(profile).complete(to_llm_request(params, cfg))
        return to_create_message_result(response, profile)

    return sample


async def answer(sampler: Sampler | None, server: str, cfg: McpServerConfig,
                 params: mt.CreateMessageRequestParams, caller: CallerInfo | None
                 ) -> tuple[mt.CreateMessageResult | mt.ErrorData, dict[str, Any]]:
    """Run the sampler under the config's rules; returns what goes back to the server and the
    summary recorded on the call (``ok`` false, with ``error``, when it was refused or failed)."""
    summary: dict[str, Any] = {"model": None, "tokens_in": 0, "tokens_out": 0, "ok": False,
                               "max_tokens": min(params.max_tokens, cfg.sampling_max_tokens)}
    if caller is not None:
        summary["agent"] = caller.agent
    if cfg.sampling is False or sampler is None:
        message = disabled_message(server) if cfg.sampling is False else no_sampler_message(server)
        summary["error"] = message
        return mt.ErrorData(code=mt.INVALID_REQUEST, message=message), summary
    started = time.monotonic()
    try:
        result = await sampler(server, cfg, params, caller)
    except Exception as e:  # noqa: BLE001 - any sampler failure goes back to the server as an error
        logger.warning("sampling for MCP server %r failed: %s", server, e)
        summary["error"] = f"{type(e).__name__}: {e}"
        summary["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        return mt.ErrorData(code=mt.INTERNAL_ERROR, message=f"sampling failed: {e}"), summary
    meta = dict(result.meta or {})
    usage = meta.pop(USAGE_META_KEY, None) or {}
    summary.update(model=result.model, ok=True, tokens_in=int(usage.get("tokens_in", 0)),
                   tokens_out=int(usage.get("tokens_out", 0)),
                   duration_ms=round((time.monotonic() - started) * 1000, 1))
    if usage.get("profile"):
        summary["profile"] = usage["profile"]
    return result.model_copy(update={"meta": meta or None}), summary


__all__ = [
    "USAGE_META_KEY",
    "Sampler",
    "answer",
    "disabled_message",
    "llm_sampler",
    "no_sampler_message",
    "pick_profile",
    "to_create_message_result",
    "to_llm_request",
]
