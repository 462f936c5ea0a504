"""A model backed by a Python function: tests and evals decide each reply from the request itself.

Where a script is a fixed list, a function can look at the conversation (the last tool result,
which agent is asking) and answer accordingly - pydantic-ai's ``FunctionModel`` idea.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.scripted import estimate_usage, stream_text
from troupe.runtime.llm.types import LLMRequest, LLMResponse, TokenCallback

ModelFunction = Callable[[LLMRequest, str], LLMResponse | str | Awaitable[LLMResponse | str]]
"""What a function model calls: ``fn(request, agent)``."""


class FunctionModel:
    """Calls ``fn(request, agent)``; it may return an :class:`LLMResponse`, a ``str`` (a text
    reply), or an awaitable of either. Text is streamed through ``on_token``; usage is estimated
    when the function reports none."""

    model_name = "function"

    def __init__(self, fn: ModelFunction, *, agent: str, name: str = "function") -> None:
        if not callable(fn):
            raise ConfigError(f"function model {name!r} needs a callable, got {type(fn).__name__}", profile=name)
        self.fn = fn
        self.agent = agent
        self.name = name

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        result: Any = self.fn(request, self.agent)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            response = LLMResponse(text=result)
        elif isinstance(result, LLMResponse):
            response = result.model_copy(deep=True)
        else:
            raise ConfigError(
                f"model function {_describe(self.fn)} (profile {self.name!r}) returned "
                f"{type(result).__name__}; return an LLMResponse or a str",
                profile=self.name,
            )
        await stream_text(response.text, on_token)
        response.model = response.model or self.model_name
        response.profile = response.profile or self.name
        if response.finish_reason is None:
            response.finish_reason = "tool_calls" if response.tool_calls else "stop"
        if response.usage.tokens_in == 0 and response.usage.tokens_out == 0:
            response.usage = estimate_usage(request, response)
        return response

    async def aclose(self) -> None:
        return None


def _describe(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def load_function(spec: str, *, path: Sequence[str] = ()) -> ModelFunction:
    """Resolve ``"package.module:callable"`` (the attribute may be dotted, ``mod:Class.method``);
    the folders in ``path`` are put on ``sys.path`` first (a suite's ``python_path``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"function spec {spec!r} is not of the form 'package.module:callable'", spec=spec
        )
    for folder in reversed(path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import module {module_name!r} for function {spec!r}: {e}", spec=spec) from e
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ConfigError(
                f"function {spec!r}: {obj.__name__ if hasattr(obj, '__name__') else obj!r} has no attribute {part!r}",
                spec=spec,
            ) from e
    if not callable(obj):
        raise ConfigError(f"function {spec!r} resolves to a {type(obj).__name__}, which is not callable", spec=spec)
    return obj


__all__ = ["FunctionModel", "ModelFunction", "load_function"]
