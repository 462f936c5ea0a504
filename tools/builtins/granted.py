"""The tools an agent gets: the ones its ``tools:`` names, plus those its capabilities bring.

An agent with ``skills`` gets ``load_skill``/``read_skill_file``, one whose ``memory`` is not ``none`` gets the
memory tools, and one granted ``knowledge`` namespaces gets ``knowledge_search``; none of them has to be
listed under ``tools:`` too (listing one changes nothing).
"""

from __future__ import annotations

from troupe.runtime.config import AgentSpec
from troupe.runtime.skills import with_skill_tools
from troupe.tools.builtins.knowledge import with_knowledge_tools
from troupe.tools.builtins.memory import with_memory_tools


def agent_tool_names(agent: AgentSpec) -> list[str]:
    """``agent.tools`` and the tools its skills, memory and knowledge bring, each once, in that order."""
    return with_knowledge_tools(with_memory_tools(with_skill_tools(agent.tools, agent.skills), agent.memory),
                                agent.knowledge)


__all__ = ["agent_tool_names"]
