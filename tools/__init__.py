"""Tools: the tool model, the registry and the built-ins."""

from troupe.tools.registry import ToolRegistry
from troupe.tools.spec import Tool, ToolSpec, tool

__all__ = ["Tool", "ToolRegistry", "ToolSpec", "tool"]
