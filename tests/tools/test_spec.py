"""Unit tests for the tool model (tools/spec.py) and the tool registry (tools/registry.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from troupe.runtime.config import PermissionLevel
from troupe.runtime.errors import ConfigError, ModelVisibleError, ToolArgumentError, UnknownToolError
from troupe.runtime.llm.types import ToolSchema
from troupe.tools.registry import ToolRegistry
from troupe.tools.spec import Execution, Tool, ToolSpec, tool


@tool(level="L2", scopes=["file:read"], timeout_s=3, idempotent=True, needs_approval=True, max_concurrency=4)
def search(
    ctx: Any,
    query: str,
    limit: int = 5,
    mode: Literal["fast", "deep"] = "fast",
    tags: list[str] | None = None,
    lang: str | None = None,
    flag: bool = False,
) -> dict[str, Any]:
    """Search the notes.

    Longer description line.

    Args:
        query: What to look for.
        limit: Max results,
            continued on the next line.
        mode: Search mode.
        tags (list): Tags to filter.

    Returns:
        limit: not an argument, must not leak into the schema.
    """
    return {"ctx": ctx, "query": query, "limit": limit, "mode": mode, "tags": tags, "lang": lang, "flag": flag}


SEARCH_PARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "query": {"description": "What to look for.", "type": "string"},
        "limit": {"default": 5, "description": "Max results, continued on the next line.", "type": "integer"},
        "mode": {"default": "fast", "description": "Search mode.", "enum": ["fast", "deep"], "type": "string"},
        "tags": {
            "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
            "default": None,
            "description": "Tags to filter.",
        },
        "lang": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "flag": {"default": False, "type": "boolean"},
    },
    "required": ["query"],
}


# --- schema ----------------------------------------------------------------------------------
def test_schema_from_hints_and_docstring():
    assert isinstance(search, Tool)
    assert search.name == "search"
    assert search.spec.description == "Search the notes. Longer description line."
    assert search.spec.parameters == SEARCH_PARAMETERS


def test_ctx_is_excluded_from_schema_and_flagged():
    assert "ctx" not in search.spec.parameters["properties"]
    assert "ctx" not in search.args_model.model_fields
    assert search.wants_ctx is True


def test_spec_options():
    assert search.spec.model_dump(exclude={"parameters", "description"}) == {
        "name": "search",
        "level": PermissionLevel.L2,
        "scopes": ("file:read",),
        "timeout_s": 3.0,
        "idempotent": True,
        "needs_approval": True,
        "resources": {},
        "retries": 2,
        "retry_backoff_s": 0.25,
        "execution": Execution.INLINE,
        "max_concurrency": 4,
        "source": "python",
        "origin_name": "",
        "sandbox": False,
    }


def test_spec_defaults():
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.spec.model_dump() == {
        "name": "ping",
        "description": "Ping.",
        "parameters": {"additionalProperties": False, "properties": {}, "type": "object"},
        "level": PermissionLevel.L0,
        "scopes": (),
        "timeout_s": 30.0,
        "idempotent": False,
        "needs_approval": False,
        "resources": {},
        "retries": 2,
        "retry_backoff_s": 0.25,
        "execution": Execution.IO,
        "max_concurrency": None,
        "source": "python",
        "origin_name": "",
        "sandbox": False,
    }
    assert ping.wants_ctx is False


def test_spec_is_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        search.spec.name = "other"  # type: ignore[misc]


def test_name_and_description_overrides_and_decorator_forms():
    def plain(x: int) -> int:
        """Plain doc."""
        return x

    a = tool(plain, name="renamed", description="Custom.")
    b = tool(name="b2")(plain)
    c = tool()(plain)
    assert (a.name, a.spec.description) == ("renamed", "Custom.")
    assert (b.name, b.spec.description) == ("b2", "Plain doc.")
    assert (c.name, c.spec.description) == ("plain", "Plain doc.")
    assert repr(a) == "Tool('renamed')"


def test_level_given_as_enum_or_string():
    def f() -> None:
        """F."""

    assert tool(f, level=PermissionLevel.L4).spec.level is PermissionLevel.L4
    assert tool(f, level="L3").spec.level is PermissionLevel.L3
    with pytest.raises(ValueError):
        tool(f, level="L9")


def test_schema_for_model():
    schema = search.spec.schema_for_model()
    assert schema == ToolSchema(
        name="search", description="Search the notes. Longer description line.", parameters=SEARCH_PARAMETERS
    )
    assert schema.to_openai()["function"]["parameters"] == SEARCH_PARAMETERS


def test_docstring_without_args_section():
    @tool
    def f(a: int, b: str = "x") -> None:
        """Do a thing.

        Returns:
            Nothing.
        """

    assert f.spec.description == "Do a thing."
    assert f.spec.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "integer"}, "b": {"default": "x", "type": "string"}},
        "required": ["a"],
    }


def test_no_docstring_and_no_hints():
    def f(a, b=1):  # noqa: ANN001, ANN202
        return a, b

    t = tool(f)
    assert t.spec.description == ""
    assert t.spec.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {}, "b": {"default": 1}},
        "required": ["a"],
    }


@pytest.mark.parametrize("sig", ["args", "kwargs"])
def test_star_args_rejected_at_definition(sig):
    if sig == "args":

        def f(a: int, *rest: int) -> None: ...

    else:

        def f(a: int, **rest: int) -> None: ...

    with pytest.raises(TypeError) as info:
        tool(f)
    assert str(info.value) == "tool f: *args/**kwargs cannot be described to a model"


# --- validation ------------------------------------------------------------------------------
def test_validate_fills_defaults():
    assert search.validate({"query": "q"}) == {
        "query": "q", "limit": 5, "mode": "fast", "tags": None, "lang": None, "flag": False,
    }


def test_validation_error_names_argument_and_says_fix():
    with pytest.raises(ToolArgumentError) as info:
        search.validate({"query": "q", "limit": "many"})
    assert str(info.value) == (
        "invalid arguments for tool 'search': limit: Input should be a valid integer, unable to parse string "
        "as an integer. Fix the arguments and call again."
    )
    assert info.value.fields == {"tool": "search"}
    assert isinstance(info.value, ModelVisibleError)


def test_missing_required_argument():
    with pytest.raises(ToolArgumentError) as info:
        search.validate({})
    assert str(info.value) == (
        "invalid arguments for tool 'search': query: Field required. Fix the arguments and call again."
    )


def test_literal_violation_and_list_items():
    with pytest.raises(ToolArgumentError) as info:
        search.validate({"query": "q", "mode": "slow", "tags": ["ok", 3]})
    assert str(info.value) == (
        "invalid arguments for tool 'search': mode: Input should be 'fast' or 'deep'; "
        "tags.1: Input should be a valid string. Fix the arguments and call again."
    )


def test_extra_arguments_rejected():
    with pytest.raises(ToolArgumentError) as info:
        search.validate({"query": "q", "qurey": "typo"})
    assert str(info.value) == (
        "invalid arguments for tool 'search': qurey: Extra inputs are not permitted. Fix the arguments and call again."
    )


def test_ctx_cannot_be_passed_as_argument():
    with pytest.raises(ToolArgumentError, match="ctx: Extra inputs are not permitted"):
        search.validate({"query": "q", "ctx": "forged"})


# --- invoke ----------------------------------------------------------------------------------
async def test_ctx_is_injected_on_invoke():
    marker = object()
    out = await search.invoke({"query": "q", "tags": ["a"]}, marker)
    assert out == {"ctx": marker, "query": "q", "limit": 5, "mode": "fast", "tags": ["a"], "lang": None, "flag": False}


async def test_ctx_defaults_to_none():
    out = await search.invoke({"query": "q"})
    assert out["ctx"] is None


async def test_sync_function_runs_in_a_thread():
    seen: list[int] = []

    @tool
    def where(x: int) -> int:
        """Record the thread."""
        seen.append(threading.get_ident())
        return x * 2

    assert await where.invoke({"x": 21}) == 42
    assert len(seen) == 1 and seen[0] != threading.get_ident()


async def test_sync_function_does_not_block_the_loop():
    started = threading.Event()
    release = threading.Event()

    @tool
    def blocking() -> str:
        """Block until released."""
        started.set()
        assert release.wait(2)
        return "released"

    task = asyncio.create_task(blocking.invoke({}))
    while not started.is_set():  # the loop keeps running while the tool blocks in its thread
        await asyncio.sleep(0.001)
    release.set()
    assert await asyncio.wait_for(task, 2) == "released"


async def test_async_function_is_awaited_on_the_loop():
    loops: list[Any] = []

    @tool
    async def aecho(text: str, ctx: Any = None) -> str:
        """Echo.

        Args:
            text: Text to echo.
        """
        loops.append((asyncio.get_running_loop(), threading.get_ident(), ctx))
        await asyncio.sleep(0)
        return text.upper()

    assert aecho.spec.parameters["properties"] == {"text": {"description": "Text to echo.", "type": "string"}}
    assert await aecho.invoke({"text": "hi"}, "C") == "HI"
    assert loops == [(asyncio.get_running_loop(), threading.get_ident(), "C")]


async def test_invoke_validates_before_running():
    calls: list[int] = []

    @tool
    async def counted(n: int) -> int:
        """Count."""
        calls.append(n)
        return n

    with pytest.raises(ToolArgumentError):
        await counted.invoke({"n": "not a number"})
    assert calls == []
    assert await counted.invoke({"n": "7"}) == 7  # lax coercion of a numeric string
    assert calls == [7]


async def test_exceptions_from_the_function_propagate():
    @tool
    def broken() -> None:
        """Break."""
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await broken.invoke({})


# --- registry --------------------------------------------------------------------------------
def _named(name: str) -> Tool:
    def f() -> str:
        """F."""
        return name

    return tool(f, name=name)


def test_registry_register_get_names_contains():
    a, b = _named("calculator"), _named("blackboard_get")
    reg = ToolRegistry([a, b])
    assert reg.get("calculator") is a
    assert reg.names() == ["blackboard_get", "calculator"]
    assert "calculator" in reg and "nope" not in reg
    c = _named("wait")
    assert reg.register(c) is c
    assert reg.names() == ["blackboard_get", "calculator", "wait"]


def test_registry_get_unknown_with_suggestion():
    reg = ToolRegistry([_named("calculator"), _named("blackboard_get"), _named("blackboard_put")])
    with pytest.raises(UnknownToolError) as info:
        reg.get("calculater")
    assert str(info.value) == (
        "unknown tool 'calculater'; did you mean 'calculator'? Known tools: blackboard_get, blackboard_put, calculator"
    )
    assert info.value.fields == {"tool": "calculater"}
    assert isinstance(info.value, ConfigError)


def test_registry_get_unknown_lists_several_suggestions():
    reg = ToolRegistry([_named("blackboard_get"), _named("blackboard_put"), _named("calculator")])
    with pytest.raises(UnknownToolError) as info:
        reg.get("blackboard_pop")
    msg = str(info.value)
    assert msg.startswith("unknown tool 'blackboard_pop'; did you mean ")
    assert "'blackboard_put'" in msg and "'blackboard_get'" in msg
    assert "'calculator'?" not in msg


def test_registry_get_unknown_without_suggestion():
    reg = ToolRegistry([_named("calculator")])
    with pytest.raises(UnknownToolError) as info:
        reg.get("zzz")
    assert str(info.value).startswith("unknown tool 'zzz'")
    assert str(info.value).endswith("Known tools: calculator")
    assert "did you mean" not in str(info.value)


def test_registry_same_tool_twice_is_fine_but_different_tool_same_name_raises():
    a = _named("calculator")
    reg = ToolRegistry([a, a])
    assert reg.register(a) is a
    with pytest.raises(ValueError) as info:  # a ToolNameClashError: a ConfigError and a ValueError
        reg.register(_named("calculator"))
    assert str(info.value).startswith("tool 'calculator' (") and "has the name of the tool 'calculator'" in str(info.value)
    assert reg.get("calculator") is a
    with pytest.raises(ValueError):
        ToolRegistry([_named("x"), _named("x")])


def test_registry_resolve():
    a, b, c = _named("a"), _named("b"), _named("c")
    reg = ToolRegistry([a, b, c])
    assert reg.resolve(["c", "a"]) == [c, a]
    assert reg.resolve([]) == []
    with pytest.raises(UnknownToolError, match="unknown tool 'd'"):
        reg.resolve(["a", "d"])


def test_toolspec_direct():
    spec = ToolSpec(name="x", level="L1", scopes=["a", "b"])
    assert spec.scopes == ("a", "b")
    assert spec.level is PermissionLevel.L1
    assert spec.schema_for_model() == ToolSchema(name="x", description="", parameters={})


# --- execution and class tools ------------------------------------------------------------------
def test_execution_is_inferred_and_checked():
    @tool
    async def fetch(url: str) -> str:
        return url

    @tool(resources={"num_cpus": 2, "accelerator": 1})
    def crunch(n: int) -> int:
        return n

    assert fetch.spec.execution is Execution.IO
    assert crunch.spec.execution is Execution.CPU
    assert crunch.spec.resources == {"num_cpus": 2, "accelerator": 1}
    with pytest.raises(TypeError, match="runs inline"):
        tool(execution="io")(lambda ctx, x: x)
    with pytest.raises(TypeError, match="resources are for execution='cpu'"):
        tool(resources={"num_gpus": 1}, execution="io")(lambda x: x)


class Counter:
    """Count calls; one instance per process keeps state between calls.

    Args:
        step: How much to add.
    """

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, step: int = 1) -> int:
        self.total += step
        return self.total


async def test_class_tool_keeps_one_instance():
    t = tool(Counter, idempotent=False)
    assert t.name == "counter"
    assert t.spec.description.startswith("Count calls")
    assert t.spec.parameters["properties"]["step"]["description"] == "How much to add."
    assert await t.invoke({"step": 2}) == 2
    assert await t.invoke({}) == 3
    with pytest.raises(ToolArgumentError):
        await t.invoke({"step": "many"})


def test_class_without_call_is_refused():
    class Nope:
        pass

    with pytest.raises(TypeError, match="__call__"):
        tool(Nope)


def test_a_parameter_called_title_keeps_its_schema():
    @tool
    def note(title: str, body: str = "") -> str:
        """Write a note."""
        return title

    assert set(note.spec.parameters["properties"]) == {"title", "body"}
    assert note.spec.parameters["required"] == ["title"]
