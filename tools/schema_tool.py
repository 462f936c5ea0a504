"""Tools whose arguments are described by a JSON schema rather than a Python signature (MCP
tools, declared tools): the schema is checked with ``jsonschema``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema import SchemaError, validators
from pydantic import BaseModel, ConfigDict

from troupe.runtime.errors import ToolArgumentError
from troupe.tools.spec import Tool, ToolSpec


class AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


class SchemaTool(Tool):
    def __init__(self, fn: Callable[..., Any], spec: ToolSpec) -> None:
        super().__init__(fn, spec, AnyArguments, False)
        self._validator: Any = None

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        arguments = dict(arguments or {})
        if self._validator is None:
            schema = self.spec.parameters or {"type": "object"}
            cls = validators.validator_for(schema, default=validators.Draft202012Validator)
            try:
                cls.check_schema(schema)
                self._validator = cls(schema)
            except SchemaError:
                self._validator = False  # a broken schema: let the tool's owner judge the arguments
        if self._validator:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
            if errors:
                parts = [f"{'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}" for e in errors[:5]]
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.name!r}: " + "; ".join(parts) + ". Fix the arguments and call again.",
                    tool=self.name,
                )
        return arguments


__all__ = ["AnyArguments", "SchemaTool"]
