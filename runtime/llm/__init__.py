"""LLM clients: one protocol, an OpenAI-compatible implementation, deterministic stand-ins.

Pick a client from a team's model profiles with :func:`build_client`.
"""

from troupe.runtime.llm.factory import ProviderContext
from troupe.runtime.llm.function import FunctionModel, load_function
from troupe.runtime.llm.registry import PROVIDERS, build_client, register_provider
from troupe.runtime.llm.scripted import ScriptedModel
from troupe.runtime.llm.text_tools import parse_text_tool_calls
from troupe.runtime.llm.types import (
    ChatMessage,
    LLMClient,
    LLMRequest,
    LLMResponse,
    Role,
    TokenCallback,
    ToolCall,
    ToolSchema,
    Usage,
)

_LAZY = {"BLOCK_REMOTE_ENV", "OpenAIChatClient"}
"""Loaded on first use: the openai SDK is heavy and many processes never talk to an endpoint."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from troupe.runtime.llm import openai_client

        return getattr(openai_client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLOCK_REMOTE_ENV",
    "PROVIDERS",
    "ChatMessage",
    "FunctionModel",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "OpenAIChatClient",
    "ProviderContext",
    "Role",
    "ScriptedModel",
    "TokenCallback",
    "ToolCall",
    "ToolSchema",
    "Usage",
    "build_client",
    "load_function",
    "parse_text_tool_calls",
    "register_provider",
]
