"""Who may be called and with what key: the remote-model guard and API keys from the environment.

Both are configuration checks: they run when a client is built and, earlier, when a team is
validated (:mod:`troupe.runtime.llm.preflight`), so a missing key fails before anything starts.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError
from troupe.runtime.redact import register_secret

BLOCK_REMOTE_ENV = "TROUPE_BLOCK_REMOTE_MODELS"
"""Set to ``1`` (tests, CI) to refuse any model endpoint that is not on this machine."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"
"""Sent when a profile names no ``api_key_env``: local servers ignore it, the SDK insists on one."""


def endpoint_url(profile: ModelProfile) -> str:
    """The profile's ``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's."""
    return profile.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def remote_models_blocked() -> bool:
    return os.environ.get(BLOCK_REMOTE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_loopback_url(url: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` - endpoints that cannot leave the machine."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_remote_allowed(profile_name: str, base_url: str) -> None:
    """The ALLOW_MODEL_REQUESTS-style guard: with ``TROUPE_BLOCK_REMOTE_MODELS=1`` only loopback
    endpoints are allowed, so no test can reach (and pay for) a real model by accident."""
    if remote_models_blocked() and not is_loopback_url(base_url):
        raise ConfigError(
            f"model profile {profile_name!r} points at {base_url}, which is not on this machine, and "
            f"{BLOCK_REMOTE_ENV}=1 forbids remote model requests (the guard that keeps tests off real "
            f"models). Use a scripted/function profile or a loopback endpoint, or unset {BLOCK_REMOTE_ENV}.",
            profile=profile_name,
            base_url=base_url,
        )


def check_api_key(profile_name: str, profile: ModelProfile) -> str | None:
    """The key from ``os.environ[profile.api_key_env]`` (``None`` when the profile names no
    variable); a :class:`ConfigError` saying what to export when the variable is not set."""
    if not profile.api_key_env:
        return None
    key = os.environ.get(profile.api_key_env)
    if not key:
        raise ConfigError(
            f"model profile {profile_name!r} reads its API key from the environment variable "
            f"{profile.api_key_env!r}, which is not set; export {profile.api_key_env}=... (keys never go in team files)",
            profile=profile_name,
            variable=profile.api_key_env,
        )
    return key


def resolve_api_key(profile_name: str, profile: ModelProfile) -> str:
    """The key to send (registered for redaction), or :data:`NO_KEY`."""
    key = check_api_key(profile_name, profile)
    if key is None:
        return NO_KEY
    register_secret(key)
    return key


__all__ = ["BLOCK_REMOTE_ENV", "DEFAULT_BASE_URL", "NO_KEY", "check_api_key", "check_remote_allowed", "endpoint_url",
           "is_loopback_url", "remote_models_blocked", "resolve_api_key"]
