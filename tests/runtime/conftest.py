"""Fixtures shared by the core tests."""

from tests.support.cores import clock, rec  # noqa: F401  (fixtures)
