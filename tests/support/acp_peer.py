"""A real ACP client for the ``troupe acp`` tests: ``agent-client-protocol`` in a venv of its own.

Like the MCP peers (:mod:`tests.support.mcp_install`): pinned, under the test cache, installed once behind
the same install lock; skipped when the install fails, except under CI (``CI`` set), where it fails. The
client itself is ``tests/support/acp_client.py``, run by that venv's Python (it imports nothing of Troupe).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.mcp_install import InstallError, _run, _slug, _unavailable, cache_root, install_lock

ACP_SDK = "agent-client-protocol==0.12.1"
CLIENT = Path(__file__).with_name("acp_client.py")


def install_acp_client() -> Path:
    """The venv's Python, with the ACP SDK installed."""
    venv = cache_root() / _slug("acp-client", ACP_SDK)
    python = venv / "bin" / "python"
    done = venv / ".installed"
    with install_lock():
        if done.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = shutil.which("python3") or sys.executable
        _run([base, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ACP_SDK])
        done.write_text(ACP_SDK + "\n")
    return python


@pytest.fixture(scope="session")
def acp_client_python() -> Path:
    try:
        return install_acp_client()
    except InstallError as e:
        _unavailable(ACP_SDK, e)
        raise


__all__ = ["ACP_SDK", "CLIENT", "acp_client_python", "install_acp_client"]
