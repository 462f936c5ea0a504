"""What a model provider's factory is given to build one agent's client, and the checks it shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from troupe.runtime.clock import Clock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError, UnknownModelError
from troupe.runtime.llm.types import LLMClient


@dataclass(frozen=True)
class ProviderContext:
    """Everything a provider factory may need to build one agent's client."""

    profile_name: str
    profile: ModelProfile
    profiles: Mapping[str, ModelProfile]
    """All profiles of the team, for resolving fallbacks."""
    agent: str
    clock: Clock


ProviderFactory = Callable[[ProviderContext], LLMClient]


def openai_fallbacks(ctx: ProviderContext) -> list[tuple[str, ModelProfile]]:
    """The profile's fallbacks, in order, checked: each must exist and be OpenAI-compatible."""
    out: list[tuple[str, ModelProfile]] = []
    for name in ctx.profile.fallbacks:
        if name == ctx.profile_name or name in (n for n, _ in out):
            continue
        fb = ctx.profiles.get(name)
        if fb is None:
            raise UnknownModelError(
                f"model profile {ctx.profile_name!r} falls back to unknown profile {name!r}; "
                f"known profiles: {sorted(ctx.profiles)}",
                profile=name,
            )
        if fb.provider != "openai":
            raise ConfigError(
                f"model profile {ctx.profile_name!r} falls back to {name!r}, whose provider is "
                f"{fb.provider!r}; fallbacks must be OpenAI-compatible profiles (provider: openai)",
                profile=name,
            )
        out.append((name, fb))
    return out


__all__ = ["ProviderContext", "ProviderFactory", "openai_fallbacks"]
