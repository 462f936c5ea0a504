"""What crosses the LLM boundary: chat messages, tool schemas, requests, responses, the protocol."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.errors import ToolArgumentError


class ToolCall(BaseModel):
    """One tool call the model asked for; ``arguments`` is the raw JSON text it wrote."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict, or a model-visible error that says what was wrong."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as e:
            raise ToolArgumentError(
                f"arguments for tool {self.name!r} are not valid JSON ({e.msg} at position {e.pos}); "
                "send a JSON object",
                tool=self.name,
            ) from e
        if not isinstance(value, dict):
            raise ToolArgumentError(
                f"arguments for tool {self.name!r} must be a JSON object, got {type(value).__name__}",
                tool=self.name,
            )
        return value

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None and self.role != "tool":
            out["name"] = self.name
        return out


class ToolSchema(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class LLMRequest(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolSchema] = Field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    """``False``: ask for at most one tool call per response (sent only when tools are offered)."""


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0


class LLMResponse(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    """The model that answered (after failover, the fallback's)."""
    finish_reason: str | None = None
    profile: str | None = None
    """The model profile that answered."""

    def to_message(self) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.text or None, tool_calls=self.tool_calls)


TokenCallback = Callable[[str], None]

TOOL_ERROR_PREFIX = "Error: "
"""How a failed tool call's result starts in the conversation (the model reads it; clients detect it)."""


@runtime_checkable
class LLMClient(Protocol):
    """Every model - remote, local or a deterministic stand-in - is driven through this."""

    model_name: str

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        """Run one chat completion; stream text deltas to ``on_token`` as they arrive."""
        ...

    async def aclose(self) -> None: ...


__all__ = [
    "TOOL_ERROR_PREFIX",
    "ChatMessage",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "Role",
    "TokenCallback",
    "ToolCall",
    "ToolSchema",
    "Usage",
]
