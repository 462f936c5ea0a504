"""Which teams an MCP client may run: team files under the server's team folders, by path or name.

A team file can start processes (stdio MCP servers, the shell tool) and import code (the
``function`` model provider), so a client (often an LLM) picks among team files that are already
on disk in folders the user chose (``--teams-dir``, default the working directory), never inline
YAML and never a path outside those folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from troupe.runtime.config import TeamConfig, load_team
from troupe.runtime.errors import ConfigError

MAX_DEPTH = 3
"""How deep :func:`find_teams` looks below each team folder (``examples/research_team/team.yaml`` is 2)."""
MAX_TEAMS = 200
MAX_FILE_BYTES = 256 * 1024
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "build", "dist"})


class TeamNotAllowedError(ConfigError):
    """The team is missing, outside the team folders, or not a valid team file."""


@dataclass(frozen=True)
class TeamFile:
    path: Path
    """Absolute path of the YAML file."""
    root: Path
    """The team folder it was found under."""
    team: TeamConfig | None
    error: str | None = None

    @property
    def relative(self) -> str:
        rel = self.path.relative_to(self.root)
        return str(rel.parent) if rel.name == "team.yaml" and str(rel.parent) != "." else str(rel)


def _looks_like_team(path: Path) -> bool:
    """Cheap test before parsing: a mapping with ``agents`` and ``entry`` at the top level."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return False
        text = path.read_text(errors="replace")
    except OSError:
        return False
    if "agents:" not in text or "entry:" not in text:
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "agents" in data and "entry" in data


def _candidates(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS
                             and depth < MAX_DEPTH)
        for name in sorted(filenames):
            if name == "team.yaml" or (name.endswith((".yaml", ".yml")) and _looks_like_team(Path(dirpath) / name)):
                out.append(Path(dirpath) / name)
    return out


def find_teams(roots: list[Path]) -> list[TeamFile]:
    """Team files under ``roots`` (at most :data:`MAX_DEPTH` folders down), each loaded or with its error."""
    found: list[TeamFile] = []
    for root in roots:
        for path in _candidates(root):
            if len(found) >= MAX_TEAMS:
                return found
            try:
                found.append(TeamFile(path, root, load_team(path)))
            except ConfigError as e:
                found.append(TeamFile(path, root, None, e.message))
    return found


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class TeamResolver:
    """Turns what a client passed as ``team`` into a loaded team, enforcing the team folders."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        self.roots = [Path(r).expanduser().resolve() for r in roots] or [Path.cwd().resolve()]

    def _hint(self) -> str:
        folders = ", ".join(str(r) for r in self.roots)
        return (f"pass a team YAML file or a folder holding team.yaml, relative to the team folder ({folders}), "
                "or a team name from list_teams")

    def path_of(self, team: str) -> Path:
        """The team file ``team`` names: a path under a team folder, or a unique team name."""
        text = team.strip()
        if not text:
            raise TeamNotAllowedError(f"no team given: {self._hint()}")
        if "\n" in text:
            raise TeamNotAllowedError("inline team YAML is not accepted (a team file can start processes); "
                                      f"save it as a file under a team folder instead: {self._hint()}")
        given = Path(text).expanduser()
        tried: list[Path] = [given.resolve()] if given.is_absolute() else [(r / given).resolve() for r in self.roots]
        for path in tried:
            file = path / "team.yaml" if path.is_dir() else path
            if not file.is_file():
                continue
            if not any(_within(file, root) for root in self.roots):
                raise TeamNotAllowedError(
                    f"team {team!r} ({file}) is outside the team folders "
                    f"({', '.join(str(r) for r in self.roots)}); move it there, or start the server with "
                    f"--teams-dir {file.parent}")
            return file
        named = [t for t in find_teams(self.roots) if t.team is not None and t.team.name == text]
        if len(named) == 1:
            return named[0].path
        if len(named) > 1:
            raise TeamNotAllowedError(f"several teams are named {text!r} ({', '.join(t.relative for t in named)}); "
                                      "pass the path of the one you mean")
        raise TeamNotAllowedError(f"team {team!r} not found: {self._hint()}")

    def load(self, team: str) -> tuple[TeamConfig, Path]:
        path = self.path_of(team)
        return load_team(path), path


__all__ = ["MAX_DEPTH", "TeamFile", "TeamNotAllowedError", "TeamResolver", "find_teams"]
