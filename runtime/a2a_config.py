"""A team member that is a remote A2A agent: its entry in the team file (``agents: - id: X; a2a: {url: ...}``).

The member takes messages and tasks like any agent; each turn sends what it received to the remote agent
over the Agent2Agent protocol (``a2a-sdk``'s client) and the remote agent's answer is the member's reply
(docs/a2a.md). Its headers may name the team's secrets (``${secret:NAME}``), read where the call is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import referenced

if TYPE_CHECKING:
    from troupe.runtime.config import AgentSpec


class A2AMember(BaseModel):
    """Where a remote A2A agent is and how to call it."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """The agent's base URL; its card is read from ``<url>/.well-known/agent-card.json`` (or ``card_path``)."""
    card_path: str | None = None
    """Another path for the agent card, relative to ``url``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every request (the card's too); values may name secrets: ``Authorization: Bearer ${secret:KEY}``."""
    api_key: str | None = None
    """Shorthand for ``headers: {Authorization: Bearer <api_key>}``; usually ``${secret:NAME}``."""
    streaming: bool | None = None
    """Stream the remote task's updates (``None``: when the card says it can)."""
    timeout_s: float = Field(default=300.0, gt=0)
    """Longest wait for one remote task to end (then it is cancelled there and the member's turn fails)."""

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"a2a.url must be an http:// or https:// URL (got {v!r})")
        return v.rstrip("/")

    def header_templates(self) -> dict[str, str]:
        """The headers as written (``${secret:...}`` not yet read), the api key's included."""
        out = dict(self.headers)
        if self.api_key is not None:
            out.setdefault("Authorization", f"Bearer {self.api_key}")
        return out


def check_a2a_secrets(agents: Iterable[AgentSpec], secrets: Mapping[str, SecretRef]) -> None:
    """Every ``${secret:NAME}`` a remote member's headers name is under the team's ``secrets:``."""
    for agent in agents:
        if agent.a2a is None:
            continue
        unknown = sorted(referenced(agent.a2a.header_templates().values()) - set(secrets))
        if unknown:
            known = ", ".join(sorted(secrets)) or "none"
            raise ValueError(f"agent {agent.id!r}: a2a headers name secret(s) {unknown} (${{secret:...}}) that are not "
                             f"under 'secrets:'; this team's secrets are: {known}")


__all__ = ["A2AMember", "check_a2a_secrets"]
