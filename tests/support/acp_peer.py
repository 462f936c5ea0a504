"""A real ACP client for the ``troupe acp`` tests: ``agent-client-protocol`` in a venv of its own.

Like the MCP peers (:mod:`tests.support.mcp_install`): pinned, under the test cache, installed once behind
the same install lock; skipped when the install fails, except under CI (``CI`` set), where it fails. The
client itself is ``tests/support/acp_client.py``, run by that venv's Python (it imports nothing of Troupe).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mcp_install import InstallError, _slug, _unavailable, cache_root, install_venv

ACP_SDK = "agent-client-protocol==0.12.1"
CLIENT = Path(__file__).with_name("acp_client.py")


def install_acp_client() -> Path:
    """The venv's Python, with the ACP SDK installed."""
    return install_venv(cache_root() / _slug("acp-client", ACP_SDK), ACP_SDK)


@pytest.fixture(scope="session")
def acp_client_python() -> Path:
    try:
        return install_acp_client()
    except InstallError as e:
        _unavailable(ACP_SDK, e)
        raise


__all__ = ["ACP_SDK", "CLIENT", "acp_client_python", "install_acp_client"]
