"""Payloads of skills: an agent loaded a skill's instructions into its context."""

from __future__ import annotations

from typing import Literal

from troupe.runtime.events.payload import Payload


class SkillLoadedPayload(Payload):
    """An agent loaded a skill (``load_skill``): its instructions are now in the agent's context, as the
    call's tool result. The digest says exactly which version of ``SKILL.md`` it read."""

    event_type: Literal["skill.loaded"] = "skill.loaded"
    name: str
    """The skill's name (its folder's name)."""
    folder: str
    """The skill's folder (absolute)."""
    sha256: str
    """Digest of the ``SKILL.md`` that was loaded."""
    call_id: str = ""
    """The ``load_skill`` call (its ``tool.call`` event's ``id``)."""
    chars: int = 0
    """Characters of the tool result that carried the instructions into the context."""
    tokens: int = 0
    """Estimated tokens of that result (what the context grew by)."""
    files: int = 0
    """Files beside ``SKILL.md`` in the skill's folder (scripts, references, assets)."""


__all__ = ["SkillLoadedPayload"]
