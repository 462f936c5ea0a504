"""Recover tool calls that small open models write as text instead of in ``tool_calls``.

Models such as Qwen2.5-0.5B served by llama.cpp answer a tool-using prompt with JSON in the
message text - bare, in a fenced block, or between ``<tool_call>`` tags - so the server never
fills ``tool_calls``. This module turns such text back into :class:`ToolCall` objects, accepting
only tool names the request declared: a name the agent does not have, malformed JSON, or prose
that merely mentions a tool yields nothing, so ordinary answers are never mistaken for calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from troupe.runtime.llm.types import ToolCall

_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:json|tool_call)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_ARG_KEYS = ("arguments", "parameters")
_SCHEMA_KEYWORDS = frozenset({"required", "type", "properties", "description", "title", "additionalProperties"})


Declared = Collection[str] | Mapping[str, dict[str, Any]]
"""Tool names, or names mapped to their parameter schemas (which enables argument repair)."""


def parse_text_tool_calls(text: str, declared: Declared) -> list[ToolCall]:
    """Tool calls written in ``text``, keeping only those whose name is in ``declared``.

    Shapes understood, tried in this order (the first shape present wins, so one call written
    twice is not returned twice): ``<tool_call>{...}</tool_call>`` tags (several allowed; an
    unclosed final tag is accepted), fenced code blocks, then the whole text as JSON or JSON
    objects embedded in prose. A candidate is ``{"name": ..., "arguments": {...}}`` (also
    ``"parameters"``, arguments as a JSON string, or OpenAI's ``{"function": {...}}`` wrapper), or
    a JSON list of those. Returns ``[]`` when nothing valid is found. When ``declared`` maps names
    to parameter schemas, arguments written as a bare value (``"arguments": [...]``) are wrapped
    under the tool's only (or only required) parameter.
    """
    if not text or not declared:
        return []
    blocks = [m.group(1) for m in _TAG.finditer(text)]
    if not blocks:
        blocks = [m.group(1) for m in _FENCE.finditer(text)]
    if blocks:
        found = [call for block in blocks for call in _calls_in(_strip_fence(block), declared)]
    else:
        found = _calls_in(text, declared)
        if not found:
            found = _embedded_calls(text, declared)
    unique: list[tuple[str, str]] = []
    for name, args in found:  # weak models repeat one call many times in a reply: run it once
        call = (name, json.dumps(args, ensure_ascii=False))
        if call not in unique:
            unique.append(call)
    return [ToolCall(id=f"call_text_{i}", name=name, arguments=arguments) for i, (name, arguments) in enumerate(unique)]


def _strip_fence(block: str) -> str:
    m = _FENCE.search(block)
    return m.group(1) if m else block


def _calls_in(block: str, declared: Declared) -> list[tuple[str, dict[str, Any]]]:
    """Calls in a block that must be JSON as a whole (a tag body, a fence, or the whole text)."""
    try:
        value = json.loads(block.strip())
    except (json.JSONDecodeError, ValueError):
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        call = _as_call(item, declared, require_arguments=False)
        if call is not None:
            out.append(call)
    return out


def _embedded_calls(text: str, declared: Declared) -> list[tuple[str, dict[str, Any]]]:
    """JSON call objects inside prose ("Sure: {...}").

    Stricter than a whole-text match: the object must carry an arguments key, so a sentence
    quoting ``{"name": "search"}`` is not taken as a call.
    """
    decoder = json.JSONDecoder()
    out = []
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        call = _as_call(value, declared, require_arguments=True)
        if call is not None:
            out.append(call)
        pos = text.find("{", end)
    return out


def _as_call(item: Any, declared: Declared, *, require_arguments: bool) -> tuple[str, dict[str, Any]] | None:
    schemas = declared if isinstance(declared, Mapping) else None
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict) and "name" not in item:
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or name not in declared:
        return None
    key = next((k for k in _ARG_KEYS if k in item), None)
    if key is None:
        return None if require_arguments else (name, {})
    args = item[key]
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        param = _sole_parameter(schemas.get(name)) if schemas else None
        if param is None:
            return None
        args = {param: args}  # a weak model wrote the value alone: wrap it under the only parameter
    if schemas and name in schemas:
        params = (schemas[name] or {}).get("properties") or {}
        # Small models echo schema keywords ("required": [...]) into the arguments: drop those.
        args = {k: v for k, v in args.items() if k in params or k not in _SCHEMA_KEYWORDS}
    return name, args


def _sole_parameter(schema: dict[str, Any] | None) -> str | None:
    """The parameter a bare value must be meant for: the only one, or the only required one."""
    if not schema:
        return None
    props = list((schema.get("properties") or {}).keys())
    required = list(schema.get("required") or [])
    if len(props) == 1:
        return props[0]
    if len(required) == 1:
        return required[0]
    return None


__all__ = ["parse_text_tool_calls"]
