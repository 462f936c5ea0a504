"""Shared fixtures: no test may reach a remote model; one local Ray for the whole session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Any OpenAI-compatible client aimed at a non-loopback host refuses to run (see openai_client).
os.environ["TROUPE_BLOCK_REMOTE_MODELS"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from tests.support.ray_fixture import ray_session  # noqa: E402,F401  (re-exported fixture)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_TEAM = REPO / "examples" / "research_team"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
async def troupe(lake: Path) -> AsyncIterator[object]:
    """A Troupe runtime in this process (no Ray), writing to this test's own lake."""
    from troupe.runtime.api import Troupe

    t = Troupe.local(lake=lake)
    try:
        yield t
    finally:
        await t.shutdown()


@pytest.fixture
async def troupe_ray(ray_session: None, lake: Path) -> AsyncIterator[object]:
    """A Troupe runtime on the session-wide Ray, writing to this test's own lake."""
    from troupe.runtime.api import Troupe

    troupe = await Troupe.connect(lake=lake)
    try:
        yield troupe
    finally:
        await troupe.shutdown()
