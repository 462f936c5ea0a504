"""One skill: a folder holding a ``SKILL.md`` in the Agent Skills format (the one agent CLIs use).

``SKILL.md`` starts with YAML front matter between ``---`` lines, then a Markdown body of
instructions::

    ---
    name: csv-report            # 1-64 of a-z, 0-9 and '-', no '-' at either end, no '--'; the folder's name
    description: Summarise a CSV file into a Markdown table. Use when ...   # 1-1024 characters
    license: Apache-2.0         # optional
    compatibility: needs python3   # optional, at most 500 characters
    metadata: {author: me}      # optional, a string-to-string map
    allowed-tools: shell        # optional; recorded, grants nothing (see docs/skills.md)
    ---
    # Instructions ...

Other front-matter keys (those other agent CLIs add) are kept in :attr:`Skill.extra` and ignored.
Scripts and resources live beside ``SKILL.md`` (``scripts/``, ``references/``, ``assets/``, ...).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.errors import TeamConfigError

SKILL_FILE = "SKILL.md"
NAME_MAX = 64
DESCRIPTION_MAX = 1024
COMPATIBILITY_MAX = 500
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_KNOWN = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
_FORMAT = ("SKILL.md starts with YAML front matter between '---' lines, e.g.\n---\nname: my-skill\n"
           "description: What it does and when to use it.\n---\nthen the instructions in Markdown")


class Skill(BaseModel):
    """A parsed, validated skill (crosses processes: the host reads it, tools return parts of it)."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    folder: str
    """The skill's folder, absolute and resolved (what ``shell`` sees, sandboxed or not)."""
    body: str
    """The instructions: ``SKILL.md`` after its front matter."""
    sha256: str
    """Digest of the whole ``SKILL.md`` (which version of the instructions an agent loaded)."""
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.folder) / SKILL_FILE


class SkillError(TeamConfigError):
    """A skill folder or its ``SKILL.md`` is missing or malformed (the message names the file and the fix)."""


def check_skill_name(name: object) -> str | None:
    """Why ``name`` is not a valid skill name, or ``None`` when it is."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if len(name) > NAME_MAX:
        return f"name {name!r} is {len(name)} characters long (at most {NAME_MAX})"
    if not _NAME.match(name):
        return (f"name {name!r} may hold only lowercase letters, digits and hyphens, with no hyphen at the "
                "start or end and no two in a row (e.g. 'csv-report')")
    return None


def split_front_matter(text: str) -> tuple[str, str] | None:
    """``(front matter, body)`` of a ``SKILL.md``, or ``None`` when it does not start with front matter."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1:])
    return None


def _fail(path: Path, why: str, fix: str = "") -> SkillError:
    return SkillError(f"invalid skill {path}: {why}" + (f"; {fix}" if fix else ""), source=str(path))


def _text_field(path: Path, data: dict[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"front matter needs '{key}' as non-empty text" + (f" (got {value!r})" if value else ""),
                    _FORMAT if key == "description" else "")
    if len(value) > limit:
        raise _fail(path, f"'{key}' is {len(value)} characters long (at most {limit})", "shorten it")
    return value.strip()


def _tools(path: Path, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(path, f"'allowed-tools' must be a space-separated string of tool names (got {value!r})")


def parse_skill(folder: str | Path) -> Skill:
    """Read and validate ``<folder>/SKILL.md``; raises :class:`SkillError` saying what is wrong and how to fix it."""
    root = Path(folder).expanduser().resolve()
    path = root / SKILL_FILE
    if not root.is_dir():
        raise SkillError(f"skill folder {root} does not exist or is not a folder; list folders that hold a "
                         f"{SKILL_FILE} (paths are relative to the team file)", source=str(root))
    if not path.is_file():
        raise _fail(path, "the file does not exist", f"a skill folder holds a {SKILL_FILE}: {_FORMAT}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, f"not UTF-8 text ({e})", "save it as UTF-8") from None
    parts = split_front_matter(text)
    if parts is None:
        raise _fail(path, "no front matter", _FORMAT)
    head, body = parts
    try:
        data = yaml.safe_load(head)
    except yaml.YAMLError as e:
        raise _fail(path, f"the front matter is not valid YAML: {e}", _FORMAT) from None
    if not isinstance(data, dict):
        raise _fail(path, f"the front matter must be a mapping of keys to values (got {type(data).__name__})", _FORMAT)
    if "name" not in data:
        raise _fail(path, "front matter has no 'name'", f"add 'name: {root.name}' (the folder's name)")
    why = check_skill_name(data["name"])
    if why:
        raise _fail(path, why)
    if data["name"] != root.name:
        raise _fail(path, f"name {data['name']!r} does not match its folder {root.name!r}",
                    "rename the folder or the skill so that they match")
    description = _text_field(path, data, "description", DESCRIPTION_MAX, required=True)
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _fail(path, f"'metadata' must be a mapping of strings to strings (got {metadata!r})")
    return Skill(
        name=data["name"], description=description or "", folder=str(root), body=body.strip("\n"),
        sha256=hashlib.sha256(raw).hexdigest(), license=None if data.get("license") is None else str(data["license"]),
        compatibility=_text_field(path, data, "compatibility", COMPATIBILITY_MAX, required=False),
        metadata={str(k): str(v) for k, v in metadata.items()}, allowed_tools=_tools(path, data.get("allowed-tools")),
        extra={str(k): v for k, v in data.items() if k not in _KNOWN},
    )


__all__ = ["SKILL_FILE", "Skill", "SkillError", "check_skill_name", "parse_skill", "split_front_matter"]
