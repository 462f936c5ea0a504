"""A real A2A client and server from ``a2a-sdk``, each run from a venv of its own (never the project's).

``a2a-sdk[http-server]`` (pinned, with uvicorn) is installed once into ``~/.cache/troupe-tests/a2a/`` (or
``$TROUPE_TEST_CACHE/a2a``) under the same install lock as the MCP peers (:mod:`tests.support.mcp_install`).
The peers are the scripts ``a2a_client_peer.py`` (discovers a card, sends, streams, gets, cancels; prints one
JSON report) and ``a2a_calc_peer.py`` (a tiny calculator agent server). When the install fails the tests that
need it are skipped, except under CI, where they fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mcp_install import InstallError, _unavailable, cache_root, install_venv

A2A_SDK = "a2a-sdk[http-server]==1.3.0"
UVICORN = "uvicorn>=0.30"
HERE = Path(__file__).resolve().parent
CLIENT_SCRIPT = HERE / "a2a_client_peer.py"
CALC_SCRIPT = HERE / "a2a_calc_peer.py"


def install_a2a_peer() -> Path:
    """The peer venv's python (``a2a-sdk`` and uvicorn in it)."""
    return install_venv(cache_root().parent / "a2a" / "a2a-sdk-1.3.0", A2A_SDK, UVICORN)


@pytest.fixture(scope="session")
def a2a_peer_python() -> Path:
    try:
        return install_a2a_peer()
    except InstallError as e:
        _unavailable(A2A_SDK, e)
        raise


__all__ = ["CALC_SCRIPT", "CLIENT_SCRIPT", "a2a_peer_python", "install_a2a_peer"]
