"""The ``ray_head`` fixture: a private Ray head for one test module (:mod:`benchmarks.support.ray_head`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.support.ray_head import RayHead, start_head


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """A private head with the dashboard and job API, token auth off, for one test module."""
    head = start_head()
    try:
        yield head
    finally:
        head.stop()
        left = head.leftover_pids()
        assert not left, f"Ray processes of {head.temp_dir} survived stop(): {left}"


__all__ = ["RayHead", "ray_head", "start_head"]
