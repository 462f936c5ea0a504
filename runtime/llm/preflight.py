"""The configuration checks of building a team's model clients, made before anything starts.

A session's clients are built inside its hosts, after Ray started and after its checkpoint was
written; a mistake found only there (an API key variable that is not set, a remote endpoint while
they are blocked, a fallback that is not OpenAI-compatible) would fail a session that already
exists. :func:`check_models` builds nothing (no SDK, no server) and raises the same
:class:`~troupe.runtime.errors.ConfigError` the client would, up front. Profiles of other providers
are left to their factories: a host may be given a factory of its own (tests, replay).
"""

from __future__ import annotations

from troupe.runtime.clock import SYSTEM_CLOCK
from troupe.runtime.config import TeamConfig
from troupe.runtime.llm.access import check_api_key, check_remote_allowed, endpoint_url
from troupe.runtime.llm.factory import ProviderContext, openai_fallbacks


def check_models(team: TeamConfig) -> None:
    """Check the OpenAI-compatible profile of every agent, and its fallbacks, as its client would."""
    for name in dict.fromkeys(team.profile_for(agent) for agent in team.agents if agent.a2a is None):
        profile = team.models[name]  # TeamConfig checked that the profile exists
        if profile.provider != "openai":
            continue
        ctx = ProviderContext(name, profile, team.models, "*", SYSTEM_CLOCK)
        for pname, p in [(name, profile), *openai_fallbacks(ctx)]:
            check_remote_allowed(pname, endpoint_url(p))
            check_api_key(pname, p)


__all__ = ["check_models"]
