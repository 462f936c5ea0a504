"""Pick the LLM client for an agent from its model profile.

Providers are looked up in :data:`PROVIDERS`, so a new backend (the embedded local model, a
replay-from-log model) is one :func:`register_provider` call rather than an edit here.
"""

from __future__ import annotations

from collections.abc import Mapping

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError, UnknownModelError
from troupe.runtime.llm.factory import ProviderContext, ProviderFactory, openai_fallbacks
from troupe.runtime.llm.function import FunctionModel, load_function
from troupe.runtime.llm.scripted import ScriptedModel
from troupe.runtime.llm.types import LLMClient

PROVIDERS: dict[str, ProviderFactory] = {}
"""Provider name (``ModelProfile.provider``) -> factory."""


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Install (or replace) the factory for ``provider: name`` profiles."""
    PROVIDERS[name] = factory


def build_client(
    profile_name: str,
    profiles: Mapping[str, ModelProfile],
    *,
    agent: str,
    clock: Clock = SYSTEM_CLOCK,
) -> LLMClient:
    """The client for ``agent`` using the profile ``profile_name``; config mistakes raise early."""
    profile = profiles.get(profile_name)
    if profile is None:
        raise UnknownModelError(
            f"unknown model profile {profile_name!r}; known profiles: {sorted(profiles)}", profile=profile_name
        )
    factory = PROVIDERS.get(profile.provider)
    if factory is None:
        raise ConfigError(
            f"model profile {profile_name!r} uses provider {profile.provider!r}, which has no registered "
            f"implementation (registered: {sorted(PROVIDERS)})",
            profile=profile_name,
        )
    return factory(ProviderContext(profile_name, profile, profiles, agent, clock))


def _scripted(ctx: ProviderContext) -> LLMClient:
    scripts = ctx.profile.scripts
    steps = scripts.get(ctx.agent)
    if steps is None:
        steps = scripts.get("*")
    if steps is None:
        raise ConfigError(
            f"scripted model profile {ctx.profile_name!r} has no script for agent {ctx.agent!r}: add "
            f"models.{ctx.profile_name}.scripts.{ctx.agent} (or a '*' script for every agent); "
            f"scripts present: {sorted(scripts)}",
            profile=ctx.profile_name,
            agent=ctx.agent,
        )
    return ScriptedModel(steps, agent=ctx.agent, name=ctx.profile_name)


def _function(ctx: ProviderContext) -> LLMClient:
    assert ctx.profile.function is not None  # ModelProfile's validator guarantees it
    fn = load_function(ctx.profile.function, path=ctx.profile.python_path)
    return FunctionModel(fn, agent=ctx.agent, name=ctx.profile_name)


def _openai(ctx: ProviderContext) -> LLMClient:
    from troupe.runtime.llm.openai_client import (
        OpenAIChatClient,  # lazy: processes without openai profiles skip the SDK
    )

    return OpenAIChatClient(ctx.profile, profile_name=ctx.profile_name, fallbacks=openai_fallbacks(ctx), clock=ctx.clock)


def _local(ctx: ProviderContext) -> LLMClient:
    # Imported on first use: ``troupe.runtime.llm`` must import without the 'local' extra installed.
    from troupe.runtime.llm.local.provider import build_local_client

    return build_local_client(ctx)


register_provider("openai", _openai)
register_provider("scripted", _scripted)
register_provider("function", _function)
register_provider("local", _local)

__all__ = ["PROVIDERS", "ProviderContext", "ProviderFactory", "build_client", "register_provider"]
