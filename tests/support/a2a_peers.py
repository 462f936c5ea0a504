"""A real A2A client and server from ``a2a-sdk``, each run from a venv of its own (never the project's).

``a2a-sdk[http-server]`` (pinned, with uvicorn) is installed once into ``~/.cache/troupe-tests/a2a/`` (or
``$TROUPE_TEST_CACHE/a2a``) under the same install lock as the MCP peers (:mod:`tests.support.mcp_install`).
The peers are the scripts ``a2a_client_peer.py`` (discovers a card, sends, streams, gets, cancels; prints one
JSON report) and ``a2a_calc_peer.py`` (a tiny calculator agent server). When the install fails the tests that
need it are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.mcp_install import InstallError, _run, _unavailable, cache_root, install_lock

A2A_SDK = "a2a-sdk[http-server]==1.3.0"
UVICORN = "uvicorn>=0.30"
HERE = Path(__file__).resolve().parent
CLIENT_SCRIPT = HERE / "a2a_client_peer.py"
CALC_SCRIPT = HERE / "a2a_calc_peer.py"


def install_a2a_peer() -> Path:
    """The peer venv's python (``a2a-sdk`` and uvicorn in it)."""
    venv = cache_root().parent / "a2a" / "a2a-sdk-1.3.0"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    with install_lock():
        if done.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", A2A_SDK, UVICORN])
        if not python.exists():
            raise InstallError(f"{A2A_SDK} installed but {python} is missing")
        done.write_text(f"{A2A_SDK} {UVICORN}\n")
    return python


@pytest.fixture(scope="session")
def a2a_peer_python() -> Path:
    try:
        return install_a2a_peer()
    except InstallError as e:
        _unavailable(A2A_SDK, e)
        raise


__all__ = ["CALC_SCRIPT", "CLIENT_SCRIPT", "a2a_peer_python", "install_a2a_peer"]
