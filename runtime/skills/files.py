"""A skill's files: listed for the model, and read one at a time without leaving the skill's folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from troupe.runtime.errors import ToolArgumentError
from troupe.runtime.skills.spec import Skill

MAX_FILES = 200
"""Most files :func:`skill_files` lists (a skill is a handful of files; the rest is elided)."""
MAX_READ_CHARS = 100_000
"""Most characters :func:`read_skill_file` returns of one file."""
_SKIP = {"__pycache__", ".git", "node_modules", ".venv"}


def skill_files(skill: Skill, limit: int = MAX_FILES) -> tuple[list[str], int]:
    """The skill's files (paths relative to its folder, ``/``-separated, sorted; ``SKILL.md`` itself
    left out) up to ``limit``, and how many there are in all. Hidden files and caches are skipped."""
    root = Path(skill.folder)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for f in filenames:
            if f.startswith(".") or (rel == Path(".") and f == "SKILL.md"):
                continue
            found.append((rel / f).as_posix())
    found.sort()
    return found[:limit], len(found)


def resolve_in_skill(skill: Skill, path: str, *, tool: str = "read_skill_file") -> Path:
    """``path`` (relative to the skill's folder) as a real file inside it; a model-visible error for an
    absolute path, a ``..`` escape, a symlink that leads out, or a missing file."""
    if not path or not path.strip():
        raise ToolArgumentError("path is empty; give a file of the skill, relative to its folder "
                                "(e.g. 'references/guide.md')", tool=tool)
    rel = PurePosixPath(path.strip().replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise ToolArgumentError(f"path {path!r} must be relative to the skill's folder and stay inside it "
                                "(no leading '/', no '..')", tool=tool)
    root = Path(skill.folder).resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ToolArgumentError(f"path {path!r} leads outside skill {skill.name!r}'s folder; only its own files "
                                "can be read", tool=tool)
    if not target.is_file():
        listed, _ = skill_files(skill, 20)
        raise ToolArgumentError(f"skill {skill.name!r} has no file {path!r}; its files: {', '.join(listed) or '(none)'}",
                                tool=tool)
    return target


def read_skill_file(skill: Skill, path: str, *, max_chars: int = MAX_READ_CHARS, tool: str = "read_skill_file") -> str:
    """The text of one of the skill's files (cut at ``max_chars``, saying so)."""
    target = resolve_in_skill(skill, path, tool=tool)
    data = target.read_bytes()
    if b"\0" in data[:8192]:
        raise ToolArgumentError(f"{path!r} is a binary file ({len(data)} bytes); it cannot be read as text (use it "
                                "from a script through the shell tool)", tool=tool)
    text = data.decode("utf-8", errors="replace")
    if len(text) > max_chars:
        return text[:max_chars] + f"\n[... cut at {max_chars} of {len(text)} characters ...]"
    return text


__all__ = ["MAX_FILES", "MAX_READ_CHARS", "read_skill_file", "resolve_in_skill", "skill_files"]
