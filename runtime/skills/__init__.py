"""Skills: folders holding a ``SKILL.md`` (the Agent Skills format agent CLIs use), listed per agent
in the team file; names and descriptions in its context, instructions loaded on demand by ``load_skill``.

* :mod:`.spec` - :class:`Skill`, :func:`parse_skill`: one folder's ``SKILL.md``, validated.
* :mod:`.catalog` - :func:`discover`, :func:`check_team_skills`, :func:`skills_prompt`: an agent's skills.
* :mod:`.files` - a skill's files, listed and read without leaving its folder.

See ``docs/skills.md``.
"""

from troupe.runtime.skills.catalog import (
    SKILL_TOOLS,
    check_team_skills,
    discover,
    skill_folders,
    skills_prompt,
    with_skill_tools,
)
from troupe.runtime.skills.files import read_skill_file, resolve_in_skill, skill_files
from troupe.runtime.skills.spec import SKILL_FILE, Skill, SkillError, check_skill_name, parse_skill

__all__ = ["SKILL_FILE", "SKILL_TOOLS", "Skill", "SkillError", "check_skill_name", "check_team_skills", "discover",
           "parse_skill", "read_skill_file", "resolve_in_skill", "skill_files", "skill_folders", "skills_prompt",
           "with_skill_tools"]
