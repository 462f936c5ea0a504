"""A session-wide local Ray for integration tests (one ``ray.init`` costs 5-11 s here).

``address="local"`` always starts a private instance, never attaching to another one on a shared
machine; it is shut down with ``ray.shutdown()`` (never ``ray stop``). If Ray is already up
(another fixture started it) it is reused and left running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray


def start_session_ray() -> None:
    """Start the session-wide test Ray (also used to start it again after a test file that needed
    a Ray of its own, e.g. the simulated cluster of tests/support/ray_cluster.py)."""
    # "troupe_test" is a custom resource for the tests of tools that declare resources.
    ray.init(address="local", num_cpus=2, resources={"troupe_test": 2}, include_dashboard=False, namespace="troupe",
             log_to_driver=False)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    if ray.is_initialized():
        yield
        return
    start_session_ray()
    try:
        yield
    finally:
        ray.shutdown()
