"""Answering an MCP server's elicitation requests (``elicitation/create``): a server asks the user for
input in the middle of a tool call, either a form (a flat JSON schema) or a URL to open (``mode: url``).

An :data:`Elicitor` decides: the session's client (the CLI prompt, ``Session.answer_elicitation``), a
policy (:func:`policy_elicitor`), or nobody, in which case the request is declined. In a session each call
carries an :data:`Asker` (:func:`asker_elicitor`): the request goes, as plain JSON, to the calling session's
supervisor (from whatever process the connection lives in), which records it, has it answered like an
approval and records the answer; the summary then says so (``recorded``) and nothing is recorded twice. An answer that does not
come within the server's ``elicitation_timeout_s`` is declined too. An accepted form gets the schema's
defaults for the fields it left out (SEP-1034) and is validated against the requested schema before it goes
back; an answer that does not fit is declined, and the summary says why. Every request leaves a summary on
the call (``McpCallResult.elicitations``): what was asked, who answered, how.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import jsonschema
from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.tools.mcp.models import CallerInfo

logger = logging.getLogger(__name__)

Elicitor = Callable[[str, McpServerConfig, mt.ElicitRequestParams, CallerInfo | None], Awaitable[mt.ElicitResult]]
"""``(server, cfg, params, caller) -> result``: answers one elicitation request (``accept`` with content,
``decline`` or ``cancel``)."""

Action = Literal["accept", "decline", "cancel"]
NOBODY = "nobody can answer elicitation requests here (no elicitor on the MCP manager)"
ANSWERED_BY_META_KEY = "troupe/answered_by"
"""Where an elicitor may say who answered (``client``, ``policy``, ...); stripped before the server sees it."""
RECORDED_META_KEY = "troupe/recorded_id"
"""Where an elicitor says the request was recorded already (its id in the session's events)."""
REASON_META_KEY = "troupe/reason"
ASK_GRACE_S = 5.0
"""An asker (the session) times the request out itself at ``elicitation_timeout_s``; the connection waits
this much longer before giving up on it, so the session's answer (``by: timeout``) is the one recorded."""

Asker = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""``(request) -> answer`` in plain JSON, so it can cross processes. The request (:func:`request_dict`):
``server``, ``mode``, ``message``, ``requested_schema``, ``url``, ``elicitation_id``, ``timeout_s``; the
answer: ``action``, ``content`` (an accepted form's values), ``by``, ``reason``, ``id`` (the recorded id)."""


def requested_schema(params: mt.ElicitRequestParams) -> dict[str, Any] | None:
    """The form's schema as plain JSON (``None`` for a URL-mode request)."""
    if isinstance(params, mt.ElicitRequestURLParams):
        return None
    schema = params.requested_schema
    return schema if isinstance(schema, dict) else schema.model_dump(by_alias=True, exclude_none=True)


def apply_defaults(schema: dict[str, Any] | None, content: dict[str, Any] | None) -> dict[str, Any]:
    """``content`` with each property it omits set to that property's ``default`` (SEP-1034)."""
    out = dict(content or {})
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if name not in out and isinstance(prop, dict) and "default" in prop:
            out[name] = prop["default"]
    return out


def validation_errors(schema: dict[str, Any] | None, content: dict[str, Any]) -> list[str]:
    """What is wrong with ``content`` for ``schema`` (empty when it fits)."""
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(form)'}: {e.message}" for e in validator.iter_errors(content)][:5]


def policy_elicitor(action: Action = "accept", values: dict[str, Any] | None = None) -> Elicitor:
    """An elicitor that answers every request the same way: ``accept`` with ``values`` (the schema's
    defaults fill in the rest), ``decline`` or ``cancel``. For trusted runs and tests."""

    async def decide(server: str, cfg: McpServerConfig, params: mt.ElicitRequestParams,
                     caller: CallerInfo | None) -> mt.ElicitResult:
        if action != "accept":
            return mt.ElicitResult(action=action, _meta={ANSWERED_BY_META_KEY: "policy"})
        content = None if isinstance(params, mt.ElicitRequestURLParams) else dict(values or {})
        return mt.ElicitResult(action="accept", content=content, _meta={ANSWERED_BY_META_KEY: "policy"})

    return decide


def request_dict(server: str, cfg: McpServerConfig, params: mt.ElicitRequestParams) -> dict[str, Any]:
    """What an :data:`Asker` is asked: the request as plain JSON (the whole message and schema)."""
    out: dict[str, Any] = {"server": server, "mode": "form", "message": params.message,
                           "requested_schema": requested_schema(params), "url": None, "elicitation_id": None,
                           "timeout_s": cfg.elicitation_timeout_s}
    if isinstance(params, mt.ElicitRequestURLParams):
        out.update(mode="url", url=params.url, elicitation_id=params.elicitation_id)
    return out


def asker_elicitor(ask: Asker) -> Elicitor:
    """An elicitor that hands each request to ``ask`` (the calling session) and takes its answer."""

    async def decide(server: str, cfg: McpServerConfig, params: mt.ElicitRequestParams,
                     caller: CallerInfo | None) -> mt.ElicitResult:
        got = await ask(request_dict(server, cfg, params))
        action = got.get("action") if got.get("action") in ("accept", "decline", "cancel") else "decline"
        meta = {ANSWERED_BY_META_KEY: str(got.get("by") or "client"), REASON_META_KEY: str(got.get("reason") or "")}
        if got.get("id"):
            meta[RECORDED_META_KEY] = str(got["id"])
        content = got.get("content") if action == "accept" and isinstance(got.get("content"), dict) else None
        return mt.ElicitResult(action=action, content=content, _meta=meta)

    return decide


def _summary(server: str, params: mt.ElicitRequestParams, caller: CallerInfo | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"server": server, "mode": "url" if isinstance(params, mt.ElicitRequestURLParams) else "form",
                               "message": params.message[:500], "action": "decline", "by": "nobody"}
    if isinstance(params, mt.ElicitRequestURLParams):
        summary.update(url=params.url, elicitation_id=params.elicitation_id)
    else:
        summary["fields"] = sorted((requested_schema(params) or {}).get("properties") or {})
    if caller is not None:
        summary["agent"] = caller.agent
    return summary


async def answer(elicitor: Elicitor | None, server: str, cfg: McpServerConfig, params: mt.ElicitRequestParams,
                 caller: CallerInfo | None, timeout_s: float | None = None) -> tuple[mt.ElicitResult, dict[str, Any]]:
    """Ask ``elicitor`` under the config's rules; returns what goes back to the server and the call's
    summary (``action``, ``by``: ``client``, ``policy``, ``timeout``, ``nobody``, ``invalid``, ``error``,
    ``session``; ``recorded``: the elicitor recorded the request and its answer already).
    ``timeout_s``: how long to wait (default the config's ``elicitation_timeout_s``)."""
    summary = _summary(server, params, caller)
    started = time.monotonic()
    if elicitor is None:
        summary["reason"] = NOBODY
        return mt.ElicitResult(action="decline"), summary
    wait_s = timeout_s if timeout_s is not None else cfg.elicitation_timeout_s
    try:
        result = await asyncio.wait_for(elicitor(server, cfg, params, caller), wait_s)
    except TimeoutError:
        summary.update(by="timeout", reason=f"no answer within {wait_s:g}s")
        return mt.ElicitResult(action="decline"), summary
    except Exception as e:  # noqa: BLE001 - a failing elicitor declines; the server goes on
        logger.warning("elicitation for MCP server %r failed: %s", server, e)
        summary.update(by="error", reason=f"{type(e).__name__}: {e}")
        return mt.ElicitResult(action="decline"), summary
    finally:
        summary["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    meta = dict(result.meta or {})
    summary["by"] = str(meta.pop(ANSWERED_BY_META_KEY, "client"))
    summary["action"] = result.action
    if reason := meta.pop(REASON_META_KEY, ""):
        summary["reason"] = str(reason)
    if recorded := meta.pop(RECORDED_META_KEY, None):
        summary.update(id=str(recorded), recorded=True)
    if summary["by"] == "nobody":
        summary["reason"] = NOBODY
    if result.action != "accept" or isinstance(params, mt.ElicitRequestURLParams):
        return mt.ElicitResult(action=result.action, _meta=meta or None), summary
    schema = requested_schema(params)
    content = apply_defaults(schema, result.content)
    errors = validation_errors(schema, content)
    if errors:
        summary.update(action="decline", by="invalid", reason="; ".join(errors))
        return mt.ElicitResult(action="decline"), summary
    summary["content_keys"] = sorted(content)
    return mt.ElicitResult(action="accept", content=content, _meta=meta or None), summary


__all__ = ["ANSWERED_BY_META_KEY", "ASK_GRACE_S", "Asker", "Elicitor", "answer", "apply_defaults", "asker_elicitor",
           "policy_elicitor", "request_dict", "requested_schema", "validation_errors"]
