"""The tool model: a typed Python function plus the spec the model and the policy see.

The JSON schema comes from the signature and docstring (via pydantic), never hand-written.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from runtime.config import PermissionLevel
from runtime.errors import ToolArgumentError
from runtime.llm.types import ToolSchema

_CONTEXT_PARAM = "ctx"


class ToolSpec(BaseModel):
    """Everything about a tool except its code: crosses processes and goes to the model."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    level: PermissionLevel = PermissionLevel.L0
    """Minimum permission level an agent needs to call it."""
    scopes: tuple[str, ...] = ()
    """Scopes an agent must hold (``file:read``, ``shell:exec``)."""
    timeout_s: float = 30.0
    idempotent: bool = False
    """Safe to retry: a repeated call has no extra effect."""
    needs_approval: bool = False
    resources: dict[str, float] = Field(default_factory=dict)

    def schema_for_model(self) -> ToolSchema:
        return ToolSchema(name=self.name, description=self.description, parameters=self.parameters)


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            section = "args"
            continue
        if stripped.lower() in ("returns:", "raises:", "example:", "examples:"):
            section = "other"
            continue
        if section == "summary":
            summary_lines.append(stripped)
        elif section == "args" and stripped:
            m = re.match(r"^(\w+)\s*(\([^)]*\))?:\s*(.*)$", stripped)
            if m and line.startswith((" ", "\t")) and len(line) - len(line.lstrip()) <= 4:
                current = m.group(1)
                args[current] = m.group(3)
            elif current:
                args[current] += " " + stripped
    summary = " ".join(" ".join(summary_lines).split())
    return summary, args


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s to ``$defs`` and drop ``title``s: small models and grammar converters read
    flat schemas more reliably than references."""
    if isinstance(schema, dict):
        if "$ref" in schema and schema["$ref"].startswith("#/$defs/"):
            target = defs[schema["$ref"].split("/")[-1]]
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return _inline(merged, defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k not in ("title", "$defs")}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _format_validation(name: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        parts.append(f"{loc}: {e['msg']}")
    return f"invalid arguments for tool {name!r}: " + "; ".join(parts) + ". Fix the arguments and call again."


class Tool:
    """A callable tool: validates arguments, then runs the function (sync functions in a thread).

    A function may take a ``ctx`` parameter; it receives the :class:`~tools.context.ToolContext`
    and is left out of the schema.
    """

    def __init__(self, fn: Callable[..., Any], spec: ToolSpec, args_model: type[BaseModel], wants_ctx: bool) -> None:
        self.fn = fn
        self.spec = spec
        self.args_model = args_model
        self.wants_ctx = wants_ctx
        self._is_async = inspect.iscoroutinefunction(fn)

    @property
    def name(self) -> str:
        return self.spec.name

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as e:
            raise ToolArgumentError(_format_validation(self.name, e), tool=self.name) from e
        return {k: getattr(model, k) for k in type(model).model_fields}

    async def invoke(self, arguments: dict[str, Any], ctx: Any = None) -> Any:
        kwargs = self.validate(arguments)
        if self.wants_ctx:
            kwargs[_CONTEXT_PARAM] = ctx
        if self._is_async:
            return await self.fn(**kwargs)
        return await asyncio.to_thread(self.fn, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    level: str | PermissionLevel = PermissionLevel.L0,
    scopes: tuple[str, ...] | list[str] = (),
    timeout_s: float = 30.0,
    idempotent: bool = False,
    needs_approval: bool = False,
    resources: dict[str, float] | None = None,
) -> Any:
    """Turn a typed function into a :class:`Tool` (usable bare, ``@tool``, or with options)."""

    def build(f: Callable[..., Any]) -> Tool:
        summary, arg_docs = _doc_parts(f)
        hints = get_type_hints(f)
        fields: dict[str, Any] = {}
        wants_ctx = False
        for pname, param in inspect.signature(f).parameters.items():
            if pname == _CONTEXT_PARAM:
                wants_ctx = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {f.__name__}: *args/**kwargs cannot be described to a model")
            annotation = hints.get(pname, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
        tool_name = name or f.__name__
        args_model = create_model(  # type: ignore[call-overload]
            f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **fields
        )
        raw = args_model.model_json_schema()
        schema = _inline(raw, raw.get("$defs", {}))
        spec = ToolSpec(
            name=tool_name,
            description=description or summary,
            parameters=schema,
            level=PermissionLevel(level),
            scopes=tuple(scopes),
            timeout_s=timeout_s,
            idempotent=idempotent,
            needs_approval=needs_approval,
            resources=resources or {},
        )
        return Tool(f, spec, args_model, wants_ctx)

    return build(fn) if fn is not None else build


__all__ = ["Tool", "ToolSpec", "tool"]
