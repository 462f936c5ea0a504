"""An agent's skills: the folders its ``skills:`` lists, found, validated, and told to its model.

Each entry of ``skills:`` is a skill folder (it holds a ``SKILL.md``) or a folder of skill folders
(each subfolder that holds a ``SKILL.md`` is a skill; other subfolders are ignored). Only the names
and descriptions go into the agent's system prompt (:func:`skills_prompt`); the instructions are
loaded on demand by the ``load_skill`` tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from troupe.runtime.skills.spec import SKILL_FILE, Skill, SkillError, parse_skill

SKILL_TOOLS = ("load_skill", "read_skill_file")
"""The tools an agent with skills is given (besides its own ``tools``)."""


def skill_folders(entry: str | Path) -> list[Path]:
    """The skill folders one ``skills:`` entry names: itself, or its subfolders that hold a ``SKILL.md``."""
    root = Path(entry).expanduser().resolve()
    if not root.is_dir():
        raise SkillError(f"skill folder {root} does not exist or is not a folder; list folders that hold a "
                         f"{SKILL_FILE}, or a folder of such folders (paths are relative to the team file)",
                         source=str(root))
    if (root / SKILL_FILE).exists():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / SKILL_FILE).exists())
    if not found:
        raise SkillError(f"skill folder {root} holds no {SKILL_FILE}, nor does any folder in it; a skill is a folder "
                         f"with a {SKILL_FILE} (front matter 'name' and 'description', then instructions)",
                         source=str(root / SKILL_FILE))
    return found


def discover(entries: Iterable[str | Path]) -> dict[str, Skill]:
    """The skills the entries name, by name; raises :class:`SkillError` on a bad folder or a name found twice."""
    skills: dict[str, Skill] = {}
    for entry in entries:
        for folder in skill_folders(entry):
            skill = parse_skill(folder)
            if skill.name in skills:
                raise SkillError(f"skill {skill.name!r} is found twice: {skills[skill.name].folder} and {skill.folder}; "
                                 "list only one of them", source=str(skill.path))
            skills[skill.name] = skill
    return skills


def check_team_skills(agents: Iterable[Any]) -> dict[str, dict[str, Skill]]:
    """Every agent's skills (``agents`` are AgentSpecs), validated before a session starts; the error names
    the agent, the file and the fix."""
    out: dict[str, dict[str, Skill]] = {}
    for agent in agents:
        if not agent.skills:
            continue
        try:
            out[str(agent.id)] = discover(agent.skills)
        except SkillError as e:
            raise SkillError(f"agent {agent.id!r}: {e.message}", agent=str(agent.id), **e.fields) from None
    return out


def with_skill_tools(tools: Sequence[str], skills: Sequence[str]) -> list[str]:
    """An agent's tool entries, plus the skill tools when it has skills."""
    return [*tools, *(t for t in SKILL_TOOLS if t not in tools)] if skills else list(tools)


def skills_prompt(skills: Mapping[str, Skill]) -> str:
    """The system prompt's section on skills: each one's name and description, and how to load one."""
    if not skills:
        return ""
    lines = [f"- {s.name}: {' '.join(s.description.split())}" for s in skills.values()]
    return ("Skills you can use (load one with load_skill(name) when a request needs it, then follow its "
            "instructions; do not load skills a request does not need):\n" + "\n".join(lines))


__all__ = ["SKILL_TOOLS", "check_team_skills", "discover", "skill_folders", "skills_prompt", "with_skill_tools"]
