"""Tool lookup by name, with suggestions when a name is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from runtime.errors import UnknownToolError
from tools.spec import Tool


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools and self._tools[tool.name] is not tool:
            raise ValueError(f"a different tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
            raise UnknownToolError(
                f"unknown tool {name!r}{hint} Known tools: {', '.join(sorted(self._tools))}", tool=name
            ) from None

    def resolve(self, names: Iterable[str]) -> list[Tool]:
        return [self.get(n) for n in names]

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


__all__ = ["ToolRegistry"]
