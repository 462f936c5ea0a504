"""Unit tests cannot start Ray, nor use one that an earlier test started (tests/conftest.py)."""

from __future__ import annotations

import pytest
import ray


def test_a_unit_test_cannot_start_ray() -> None:
    from troupe.actors.backend import ensure_ray

    with pytest.raises(RuntimeError, match=r"test_a_unit_test_cannot_start_ray is a unit test and may not start"):
        ray.init(address="local", num_cpus=1)
    with pytest.raises(RuntimeError, match="mark it @pytest.mark.ray"):
        ensure_ray("local")


def test_nor_use_a_ray_that_is_already_up() -> None:
    # ray.put connects first (ray.init) when Ray looks down: whether or not an earlier Ray test left the
    # session-wide Ray running, the call refuses instead of silently using it.
    with pytest.raises(RuntimeError, match="may not start or use Ray"):
        ray.put(1)

    @ray.remote
    def one() -> int:
        return 1

    with pytest.raises(RuntimeError, match="may not start or use Ray"):
        one.remote()


@pytest.mark.ray
def test_a_test_marked_ray_uses_the_session_ray(ray_session: None) -> None:
    assert ray.is_initialized()
    assert ray.get(ray.put(41)) + 1 == 42
