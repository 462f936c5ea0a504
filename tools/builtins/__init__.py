"""Built-in tools every agent can be given by name."""

from __future__ import annotations

from troupe.runtime.skills import with_skill_tools
from troupe.tools.builtins import blackboard, calculator, clock, knowledge, messaging, shell, skills, tasks, workspace
from troupe.tools.builtins.granted import agent_tool_names
from troupe.tools.builtins.memory import TOOLS as MEMORY_TOOLS
from troupe.tools.builtins.memory import with_memory_tools
from troupe.tools.registry import ToolRegistry

BUILTIN_TOOLS = [
    t.with_spec(source="builtin")
    for t in (*blackboard.TOOLS, *tasks.TOOLS, *messaging.TOOLS, *calculator.TOOLS, *clock.TOOLS,
              *workspace.TOOLS, *shell.TOOLS, *skills.TOOLS, *knowledge.TOOLS, *MEMORY_TOOLS)
]


def default_registry() -> ToolRegistry:
    """A fresh registry holding every built-in tool."""
    return ToolRegistry(BUILTIN_TOOLS)


__all__ = ["BUILTIN_TOOLS", "agent_tool_names", "default_registry", "with_memory_tools", "with_skill_tools"]
