"""Skill tools: load a skill's instructions into the conversation, read its other files.

An agent whose team-file entry lists ``skills:`` is given both tools (it need not list them). Its
system prompt names each skill and says what it is for; ``load_skill`` returns the instructions
(the tool result is context like any other, counted against ``context_tokens``) and records a
``skill.loaded`` event. A skill's scripts run through the ``shell`` tool, with the agent's own
permissions and approvals: its folder is mounted read-only in the sandbox (see
:meth:`troupe.tools.sandbox.policy.SandboxRequest.for_context`), so an agent without ``shell``
cannot run them.
"""

from __future__ import annotations

import fnmatch

from troupe.runtime.errors import ToolArgumentError
from troupe.runtime.events.skill import SkillLoadedPayload
from troupe.runtime.skills import Skill, discover, skill_files
from troupe.runtime.skills import read_skill_file as read_file_of
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool

_CHARS_PER_TOKEN = 4


def _skills(ctx: ToolContext) -> dict[str, Skill]:
    return discover(ctx.spec.skills)


def _skill(ctx: ToolContext, name: str, tool_name: str) -> Skill:
    skills = _skills(ctx)
    found = skills.get(name.strip())
    if found is None:
        known = ", ".join(skills) or "(none: this agent has no skills)"
        raise ToolArgumentError(f"no skill named {name!r}; this agent's skills: {known}", tool=tool_name)
    return found


def _has_shell(ctx: ToolContext) -> bool:
    return any(fnmatch.fnmatchcase("shell", entry) for entry in ctx.spec.tools)


def render_skill(skill: Skill, files: list[str], total: int, *, shell: bool) -> str:
    """What ``load_skill`` returns: the instructions, then the skill's files and how to use them."""
    parts = [f"# Skill: {skill.name}", f"Folder: {skill.folder}", "", skill.body or "(this skill has no instructions)"]
    if files:
        shown = "\n".join(f"- {f}" for f in files)
        more = f"\n- ... and {total - len(files)} more" if total > len(files) else ""
        parts += ["", f"Files of this skill (read one with read_skill_file('{skill.name}', path)):\n{shown}{more}"]
        if shell:
            parts.append(f"Run its scripts with the shell tool by their full path (the folder is read-only; write "
                         f"to the workspace), e.g. `bash {skill.folder}/scripts/NAME.sh` or "
                         f"`python3 {skill.folder}/scripts/NAME.py`.")
        else:
            parts.append("You have no shell tool, so you cannot run this skill's scripts.")
    return "\n".join(parts)


@tool(level="L0", idempotent=True, source="builtin")
async def load_skill(ctx: ToolContext, name: str) -> str:
    """Load one of your skills: returns its full instructions and lists its files. Load a skill only when
    the request needs it.

    Args:
        name: The skill's name, as listed under "Skills you can use".
    """
    skill = _skill(ctx, name, "load_skill")
    files, total = skill_files(skill)
    text = render_skill(skill, files, total, shell=_has_shell(ctx))
    ctx.emit(SkillLoadedPayload(name=skill.name, folder=skill.folder, sha256=skill.sha256, call_id=ctx.tool_call_id,
                                chars=len(text), tokens=len(text) // _CHARS_PER_TOKEN, files=total))
    return text


@tool(level="L0", idempotent=True, source="builtin")
async def read_skill_file(ctx: ToolContext, name: str, path: str) -> str:
    """Read a file of one of your skills (a reference, a template, a script's source).

    Args:
        name: The skill's name.
        path: The file's path inside the skill's folder, e.g. "references/guide.md".
    """
    return read_file_of(_skill(ctx, name, "read_skill_file"), path)


TOOLS = [load_skill, read_skill_file]
