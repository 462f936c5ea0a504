"""Tools: the tool model, the registry and the built-ins."""

from tools.registry import ToolRegistry
from tools.spec import Tool, ToolSpec, tool

__all__ = ["Tool", "ToolRegistry", "ToolSpec", "tool"]
