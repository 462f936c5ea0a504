"""A team's A2A agent card: its name and description, a skill per agent (from its role and instructions),
streaming, and Bearer authentication when the server has API keys."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)

from troupe.runtime.config import TeamConfig

PROTOCOL_VERSION = "1.0"
BEARER = "bearer"


def _version() -> str:
    try:
        return version("troupe-runtime")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without an install
        return "0"


def skills(team: TeamConfig) -> list[AgentSkill]:
    """One skill per agent: what its role and instructions say it does (the entry agent's first)."""
    ordered = sorted(team.agents, key=lambda a: a.id != team.entry)
    out = []
    for a in ordered:
        first = a.instructions.strip().splitlines()[0] if a.instructions.strip() else ""
        text = ". ".join(t for t in (a.role.strip().rstrip("."), first) if t) or f"agent {a.id} of team {team.name}"
        tags = [team.name, "entry" if a.id == team.entry else "member", *(["remote-a2a"] if a.a2a else [])]
        out.append(AgentSkill(id=str(a.id), name=a.name or str(a.id), description=text, tags=tags,
                              input_modes=["text/plain"], output_modes=["text/plain", "application/json"]))
    return out


def agent_card(team: TeamConfig, url: str, *, secured: bool) -> AgentCard:
    """The card served at ``/.well-known/agent-card.json`` for ``team`` at ``url`` (JSON-RPC)."""
    card = AgentCard(
        name=team.name, description=team.description or f"Troupe team {team.name} (entry agent {team.entry})",
        version=_version(),
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION)],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"], skills=skills(team),
    )
    if secured:
        card.security_schemes[BEARER].CopyFrom(SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="Bearer", bearer_format="troupe API key (troupe keys create)")))
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card


__all__ = ["PROTOCOL_VERSION", "agent_card", "skills"]
