"""Answering an MCP server's elicitation requests (``elicitation/create``): a server asks the user for
input in the middle of a tool call, either a form (a flat JSON schema) or a URL to open (``mode: url``).

An :data:`Elicitor` decides: the session's client (the CLI prompt, ``Session.answer_elicitation``), a
policy (:func:`policy_elicitor`), or nobody, in which case the request is declined. An answer that does not
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
                 caller: CallerInfo | None) -> tuple[mt.ElicitResult, dict[str, Any]]:
    """Ask ``elicitor`` under the config's rules; returns what goes back to the server and the call's
    summary (``action``, ``by``: ``client``, ``policy``, ``timeout``, ``nobody``, ``invalid``, ``error``)."""
    summary = _summary(server, params, caller)
    started = time.monotonic()
    if elicitor is None:
        summary["reason"] = NOBODY
        return mt.ElicitResult(action="decline"), summary
    try:
        result = await asyncio.wait_for(elicitor(server, cfg, params, caller), cfg.elicitation_timeout_s)
    except TimeoutError:
        summary.update(by="timeout", reason=f"no answer within {cfg.elicitation_timeout_s:g}s")
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


__all__ = ["ANSWERED_BY_META_KEY", "Elicitor", "answer", "apply_defaults", "policy_elicitor", "requested_schema",
           "validation_errors"]
