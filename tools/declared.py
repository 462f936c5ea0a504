"""Tools known only by their JSON schema (a team's ``declared_tools``): the call is validated and
recorded as events, and answered with a fixed result; nothing runs."""

from __future__ import annotations

from typing import Any

from troupe.runtime.config import DeclaredTool
from troupe.tools.schema_tool import SchemaTool
from troupe.tools.spec import Execution, Tool, ToolSpec


def declared_tool(declared: DeclaredTool) -> Tool:
    result = declared.result

    async def answer(**_: Any) -> str:
        return result

    spec = ToolSpec(name=declared.name, description=declared.description, parameters=declared.parameters,
                    execution=Execution.INLINE, idempotent=True, source="declared", timeout_s=5)
    return SchemaTool(answer, spec)


def declared_tools(specs: list[DeclaredTool]) -> list[Tool]:
    return [declared_tool(d) for d in specs]


__all__ = ["declared_tool", "declared_tools"]
