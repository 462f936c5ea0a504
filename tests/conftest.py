"""Shared fixtures: no test may reach a remote model; one local Ray for the whole session, and only
the tests that say they need Ray may use it (tests/actors/, or a ``ray``/``dashboard``/``job``/
``multinode`` mark): anywhere else ``ray.init`` raises, as in Ray Serve's unit tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Any OpenAI-compatible client aimed at a non-loopback host refuses to run (see openai_client).
os.environ["TROUPE_BLOCK_REMOTE_MODELS"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# API keys (troupe keys, troupe serve): never the developer's ~/.troupe/keys.json.
os.environ["TROUPE_HOME"] = tempfile.mkdtemp(prefix="troupe-home-")

# Ray reads RAY_AUTH_MODE when it is imported.
import ray

from tests.support.ray_fixture import ray_session  # noqa: F401  (re-exported fixture)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_TEAM = REPO / "examples" / "research_team"

RAY_MARKS = ("ray", "dashboard", "job", "multinode", "serve", "private_ray")
"""The marks of tests that may start or use Ray (``-m "not ray"`` and friends deselect them)."""
RAY_TEST_DIR = REPO / "tests" / "actors"
"""The tests of the Ray edge (troupe.actors): they may use Ray without a mark."""


def may_use_ray(item: pytest.Item) -> bool:
    return item.path.is_relative_to(RAY_TEST_DIR) or any(item.get_closest_marker(m) for m in RAY_MARKS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that asks for the session-wide Ray must carry a Ray mark, so `-m "not ray"` leaves it out."""
    unmarked = [item.nodeid for item in items
                if "ray_session" in getattr(item, "fixturenames", ()) and not may_use_ray(item)]
    if unmarked:
        raise pytest.UsageError("these tests use the ray_session fixture but have no Ray mark "
                                f"({', '.join(RAY_MARKS)}): add @pytest.mark.ray\n  " + "\n  ".join(unmarked))


@pytest.fixture(autouse=True)
def _llm_edge_per_test() -> Iterator[None]:
    """A test that builds an actor class in-process (``LLMWorkerActor()``) installs the Ray edge into
    this process's LLM layer, as the actor would in its own worker; later tests get it back as it was."""
    from troupe.runtime.llm.edge import current_edge, install_edge

    before = current_edge()
    yield
    install_edge(before)


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a unit test, starting Ray raises, and so does using a Ray an earlier test started: Ray's API
    calls (``ray.get``, ``.remote()``, ``ray.get_actor``, ...) connect through ``ray.init`` when
    ``ray.is_initialized()`` is false."""
    if may_use_ray(request.node):
        return
    nodeid = request.node.nodeid

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{nodeid} is a unit test and may not start or use Ray: keep Ray out of it, or "
                           "mark it @pytest.mark.ray (and give it the ray_session fixture)")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


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
