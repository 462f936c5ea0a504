"""The tool model: a typed Python function plus the spec the model and the policy see.

The JSON schema comes from the signature and docstring (via pydantic), never hand-written.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from troupe.runtime.config import PermissionLevel
from troupe.runtime.errors import ToolArgumentError
from troupe.runtime.llm.types import ToolSchema

_CONTEXT_PARAM = "ctx"
RAY_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
"""Keys of :attr:`ToolSpec.resources` that map to Ray's own options; any other key is a custom resource."""


class Execution(StrEnum):
    """Where the scheduler runs a tool's calls."""

    INLINE = "inline"
    """In the calling agent's process (tools that use the session's services or its workspace)."""
    IO = "io"
    """As a coroutine on the node's async tool-worker actor (I/O-bound: waits, HTTP, subprocesses)."""
    CPU = "cpu"
    """As a Ray task with the spec's ``resources``, anywhere in the cluster they exist."""
    MCP = "mcp"
    """On the node's shared connection to the tool's MCP server."""


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
    timeout_s: float = Field(default=30.0, gt=0)
    """Per attempt; a call that takes longer is cancelled and the model reads a timeout error."""
    idempotent: bool = False
    """Safe to retry: a repeated call has no extra effect."""
    retries: int = Field(default=2, ge=0)
    """Extra attempts after a failure or timeout (idempotent tools only)."""
    retry_backoff_s: float = Field(default=0.25, ge=0)
    """First retry delay; doubles each attempt."""
    needs_approval: bool = False
    resources: dict[str, float] = Field(default_factory=dict)
    """``num_cpus`` / ``num_gpus`` / ``memory`` (bytes) and custom resources a ``cpu`` call needs."""
    execution: Execution = Execution.IO
    max_concurrency: int | None = Field(default=None, ge=1)
    """Calls of this tool running at once across the runtime (``None``: only the global cap)."""
    source: str = "python"
    """``builtin``, ``python`` or ``mcp:<server>``."""
    origin_name: str = ""
    """The tool's own name at its source (an MCP server's), when the model-visible name differs."""
    sandbox: bool = False
    """A ``cpu`` tool whose function runs in a child Python inside the session's sandbox
    (:mod:`troupe.tools.sandbox`), unless the team file says ``sandbox: off``."""

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
        return {k: (_inline_properties(v, defs) if k == "properties" and isinstance(v, dict) else _inline(v, defs))
                for k, v in schema.items() if k not in ("title", "$defs")}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _inline_properties(props: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Property names are data, not keywords: a parameter may well be called ``title``."""
    return {name: _inline(sub, defs) for name, sub in props.items()}


def _format_validation(name: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        parts.append(f"{loc}: {e['msg']}")
    return f"invalid arguments for tool {name!r}: " + "; ".join(parts) + ". Fix the arguments and call again."


_INSTANCES: dict[type, Any] = {}
"""One instance per class tool per process: a class tool may hold a client or a loaded model."""


def _callable_of(target: Callable[..., Any] | type) -> Callable[..., Any]:
    if isinstance(target, type):
        if target not in _INSTANCES:
            _INSTANCES[target] = target()
        return _INSTANCES[target]
    return target


async def call_target(target: Callable[..., Any] | type, kwargs: dict[str, Any]) -> Any:
    """Run a tool's function (or its class's instance) with validated arguments: coroutines are
    awaited, plain functions run in a thread so they never block the caller's event loop.

    This is all a worker in another process needs: the target travels, the :class:`Tool` does not.
    """
    fn = _callable_of(target)
    method = getattr(fn, "__call__", fn) if not inspect.isfunction(fn) else fn  # noqa: B004  (the method itself)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(method):
        return await fn(**kwargs)
    return await asyncio.to_thread(fn, **kwargs)


class Tool:
    """A callable tool: validates arguments, then runs the function (sync functions in a thread).

    The target is a function, or a class whose instances are callable (built once per process,
    on first call). It may take a ``ctx`` parameter, which receives the
    :class:`~troupe.tools.context.ToolContext` and is left out of the schema; such a tool runs inline.
    """

    def __init__(self, fn: Callable[..., Any] | type, spec: ToolSpec, args_model: type[BaseModel], wants_ctx: bool) -> None:
        self.fn = fn
        self.spec = spec
        self.args_model = args_model
        self.wants_ctx = wants_ctx

    @property
    def name(self) -> str:
        return self.spec.name

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as e:
            raise ToolArgumentError(_format_validation(self.name, e), tool=self.name) from e
        return {k: getattr(model, k) for k in type(model).model_fields}

    async def call_validated(self, kwargs: dict[str, Any], ctx: Any = None) -> Any:
        if self.wants_ctx:
            kwargs = {**kwargs, _CONTEXT_PARAM: ctx}
        return await call_target(self.fn, kwargs)

    async def invoke(self, arguments: dict[str, Any], ctx: Any = None) -> Any:
        return await self.call_validated(self.validate(arguments), ctx)

    def with_spec(self, **changes: Any) -> Tool:
        """A copy with some spec fields changed (a team's per-tool overrides)."""
        return Tool(self.fn, self.spec.model_copy(update=changes), self.args_model, self.wants_ctx)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _signature_target(f: Callable[..., Any] | type) -> Callable[..., Any]:
    if isinstance(f, type):
        call = next((vars(c)["__call__"] for c in f.__mro__[:-1] if "__call__" in vars(c)), None)
        if call is None:
            raise TypeError(f"tool class {f.__name__} needs a typed __call__ method (its arguments are the tool's)")
        return call
    return f


def _pick_execution(execution: str | Execution | None, resources: dict[str, float], wants_ctx: bool, name: str,
                    sandbox: bool = False) -> Execution:
    chosen = Execution(execution) if execution is not None else (
        Execution.INLINE if wants_ctx else (Execution.CPU if resources or sandbox else Execution.IO))
    if sandbox and (wants_ctx or chosen is not Execution.CPU):
        raise TypeError(f"tool {name}: sandbox=True is for execution='cpu' tools without a ctx parameter (their "
                        f"function runs in a sandboxed child process); got execution={chosen.value!r}")
    if wants_ctx and chosen is not Execution.INLINE:
        raise TypeError(f"tool {name}: a tool that takes 'ctx' uses this session's services and runs inline; "
                        f"drop execution={chosen.value!r} or the ctx parameter")
    if resources and chosen is not Execution.CPU:
        raise TypeError(f"tool {name}: resources are for execution='cpu' (a Ray task); got execution={chosen.value!r}")
    return chosen


def tool(
    fn: Callable[..., Any] | type | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    level: str | PermissionLevel = PermissionLevel.L0,
    scopes: tuple[str, ...] | list[str] = (),
    timeout_s: float = 30.0,
    idempotent: bool = False,
    retries: int = 2,
    needs_approval: bool = False,
    resources: dict[str, float] | None = None,
    execution: str | Execution | None = None,
    max_concurrency: int | None = None,
    source: str = "python",
    sandbox: bool = False,
) -> Any:
    """Turn a typed function or class into a :class:`Tool` (usable bare, ``@tool``, or with options).

    ``execution`` defaults to ``inline`` for tools that take ``ctx``, ``cpu`` when ``resources``
    are given or ``sandbox`` is set, and ``io`` otherwise. ``sandbox=True`` runs a cpu tool's function
    inside the session's sandbox (see ``docs/sandbox.md``).
    """

    def build(f: Callable[..., Any] | type) -> Tool:
        sig_fn = _signature_target(f)
        summary, arg_docs = _doc_parts(f)
        if not summary and isinstance(f, type):
            summary, arg_docs = _doc_parts(sig_fn)
        elif isinstance(f, type):
            arg_docs = {**_doc_parts(sig_fn)[1], **arg_docs}
        hints = get_type_hints(sig_fn)
        fields: dict[str, Any] = {}
        wants_ctx = False
        params = list(inspect.signature(sig_fn).parameters.items())
        if isinstance(f, type):
            params = params[1:]  # self
        for pname, param in params:
            if pname == _CONTEXT_PARAM:
                wants_ctx = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {f.__name__}: *args/**kwargs cannot be described to a model")
            annotation = hints.get(pname, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
        tool_name = name or (_snake(f.__name__) if isinstance(f, type) else f.__name__)
        args_model = create_model(
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
            retries=retries,
            needs_approval=needs_approval,
            resources=resources or {},
            execution=_pick_execution(execution, resources or {}, wants_ctx, tool_name, sandbox),
            max_concurrency=max_concurrency,
            source=source,
            sandbox=sandbox,
        )
        return Tool(f, spec, args_model, wants_ctx)

    return build(fn) if fn is not None else build


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


__all__ = ["RAY_RESOURCE_KEYS", "Execution", "Tool", "ToolSpec", "call_target", "tool"]
