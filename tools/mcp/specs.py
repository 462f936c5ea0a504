"""An MCP server's tools as :class:`~troupe.tools.spec.ToolSpec` s: what the model and the policy see.

Names are namespaced (``github__create_issue``) so two servers never clash; permissions, approval,
timeouts, concurrency and idempotency come from the server's config, per tool where its ``tools``
entries say (:mod:`troupe.tools.mcp.policy`); retries are allowed only where the entry or the server
says the tool is idempotent (or read-only). Resources and prompts, when the server has them, are offered as
four extra (pseudo) tools, so a model can use them without any MCP-specific machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ConfigError
from troupe.tools.mcp.models import SEPARATOR, model_tool_name
from troupe.tools.mcp.policy import effective_policy
from troupe.tools.spec import Execution, ToolSpec

LIST_RESOURCES = "list_resources"
READ_RESOURCE = "read_resource"
LIST_PROMPTS = "list_prompts"
GET_PROMPT = "get_prompt"
RESOURCE_TOOLS = (LIST_RESOURCES, READ_RESOURCE)
PROMPT_TOOLS = (LIST_PROMPTS, GET_PROMPT)
COMPLETE = "complete"
"""Argument completion (``completion/complete``) for a prompt's or a resource template's argument."""
SUBSCRIBE = "subscribe_resource"
UNSUBSCRIBE = "unsubscribe_resource"
"""Resource subscriptions (servers whose ``resources`` capability has ``subscribe``): :mod:`.subscriptions`."""
PSEUDO_TOOLS = frozenset((*RESOURCE_TOOLS, *PROMPT_TOOLS, COMPLETE, SUBSCRIBE, UNSUBSCRIBE))
"""Tool names ``McpManager.call`` routes to the resource and prompt APIs (unless the server has a
real tool of the same name, which wins)."""

_MAX_LISTED_RESOURCES = 20
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def strip_titles(schema: Any) -> Any:
    """The schema without ``title`` annotations (tokens the model does not need); a *property*
    named ``title`` is kept."""
    if isinstance(schema, list):
        return [strip_titles(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = strip_titles(value)
    return out


def parameters_of(tool: mt.Tool) -> dict[str, Any]:
    schema = strip_titles(dict(tool.input_schema or {}))
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return schema


def needs_approval(cfg: McpServerConfig, tool: str) -> bool:
    """Whether ``tool`` needs approval: its ``tools`` entry, else the server's setting."""
    return effective_policy(cfg, tool).needs_approval


def _spec(server: str, cfg: McpServerConfig, tool: str, description: str, parameters: dict[str, Any],
          idempotent: bool) -> ToolSpec:
    policy = effective_policy(cfg, tool, idempotent_hint=idempotent)
    return ToolSpec(
        name=model_tool_name(server, tool),
        description=description,
        parameters=parameters,
        level=policy.level,
        scopes=policy.scopes,
        timeout_s=policy.timeout_s,
        idempotent=policy.idempotent,
        needs_approval=policy.needs_approval,
        max_concurrency=policy.max_concurrency,
        execution=Execution.MCP,
        source=f"mcp:{server}",
        origin_name=tool,
    )


def tool_spec(server: str, cfg: McpServerConfig, tool: mt.Tool) -> ToolSpec:
    hints = tool.annotations
    idempotent = bool(hints and (hints.idempotent_hint or hints.read_only_hint))
    description = tool.description or tool.title or f"Tool {tool.name!r} of MCP server {server!r}."
    return _spec(server, cfg, tool.name, description, parameters_of(tool), idempotent)


def resource_specs(server: str, cfg: McpServerConfig, resources: Sequence[mt.Resource] = ()) -> list[ToolSpec]:
    listed = ""
    if resources:
        uris = ", ".join(r.uri for r in resources[:_MAX_LISTED_RESOURCES])
        more = f" and {len(resources) - _MAX_LISTED_RESOURCES} more" if len(resources) > _MAX_LISTED_RESOURCES else ""
        listed = f" Known resources: {uris}{more}."
    uri_schema = {"type": "object", "properties": {
        "uri": {"type": "string", "description": "The resource URI, or a resource template's URI template "
                                                 "(e.g. 'file:///logs/{day}') filled in from 'arguments'."},
        "arguments": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "Values for a URI template's {placeholders}."}},
        "required": ["uri"], "additionalProperties": False}
    return [
        _spec(server, cfg, LIST_RESOURCES, f"List the resources MCP server {server!r} offers (URI, name, type), "
              "and its resource templates (URI templates to read with arguments).",
              {"type": "object", "properties": {}, "additionalProperties": False}, True),
        _spec(server, cfg, READ_RESOURCE, f"Read one resource of MCP server {server!r} by URI.{listed}",
              uri_schema, True),
    ]


def prompt_specs(server: str, cfg: McpServerConfig) -> list[ToolSpec]:
    get_schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "The prompt's name."},
            "arguments": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "The prompt's arguments (string values)."},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    return [
        _spec(server, cfg, LIST_PROMPTS, f"List the prompt templates MCP server {server!r} offers.",
              {"type": "object", "properties": {}, "additionalProperties": False}, True),
        _spec(server, cfg, GET_PROMPT, f"Render one prompt template of MCP server {server!r}.", get_schema, True),
    ]


def complete_spec(server: str, cfg: McpServerConfig) -> ToolSpec:
    """``<server>__complete``: the server's suggestions for an argument of a prompt or resource template."""
    schema = {"type": "object", "properties": {
        "prompt": {"type": "string", "description": "The prompt whose argument to complete (or give 'uri')."},
        "uri": {"type": "string", "description": "The resource template (its URI template) whose argument to complete."},
        "argument": {"type": "string", "description": "The argument's name."},
        "value": {"type": "string", "description": "What is typed so far (may be empty)."},
        "context": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "Arguments already chosen (some completions depend on them)."}},
        "required": ["argument"], "additionalProperties": False}
    return _spec(server, cfg, COMPLETE, f"Suggest values for an argument of a prompt or resource template of MCP "
                                        f"server {server!r} (completion).", schema, True)


def subscription_specs(server: str, cfg: McpServerConfig) -> list[ToolSpec]:
    """``<server>__subscribe_resource`` / ``__unsubscribe_resource``: a notice in the agent's mailbox each time the
    resource changes, until it unsubscribes or its session ends."""
    schema = {"type": "object", "properties": {"uri": {"type": "string", "description": "The resource URI."}},
              "required": ["uri"], "additionalProperties": False}
    return [
        _spec(server, cfg, SUBSCRIBE, f"Subscribe to a resource of MCP server {server!r}: you get a notice message "
                                      "each time it changes (until you unsubscribe or the session ends).", schema, True),
        _spec(server, cfg, UNSUBSCRIBE, f"Stop the notices of a resource of MCP server {server!r}.", schema, True),
    ]


def build_specs(server: str, cfg: McpServerConfig, tools: Sequence[mt.Tool], *, resources: bool = False,
                prompts: bool = False, known_resources: Sequence[mt.Resource] = (),
                completions: bool = False, subscribe: bool = False) -> list[ToolSpec]:
    """Specs for a server's tools, plus the resource / prompt tools when it has those capabilities
    (a real tool of the same name takes precedence)."""
    if SEPARATOR in server:
        raise ConfigError(f"MCP server name {server!r} must not contain {SEPARATOR!r} (it separates server and tool "
                          "in the names the model sees); rename it under mcpServers", server=server)
    specs = [tool_spec(server, cfg, t) for t in tools]
    real = {t.name for t in tools}
    extra = (resource_specs(server, cfg, known_resources) if resources else []) + (prompt_specs(server, cfg) if prompts else [])
    extra += [complete_spec(server, cfg)] if completions else []
    extra += subscription_specs(server, cfg) if subscribe else []
    specs += [s for s in extra if s.name.split(SEPARATOR, 1)[1] not in real]
    return specs


__all__ = [
    "COMPLETE",
    "GET_PROMPT",
    "LIST_PROMPTS",
    "LIST_RESOURCES",
    "PROMPT_TOOLS",
    "PSEUDO_TOOLS",
    "READ_RESOURCE",
    "RESOURCE_TOOLS",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "build_specs",
    "complete_spec",
    "needs_approval",
    "parameters_of",
    "prompt_specs",
    "resource_specs",
    "strip_titles",
    "subscription_specs",
    "tool_spec",
]
