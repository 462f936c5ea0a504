"""Fixtures for the MCP tests: our own test server (stdio and streamable HTTP) and the real
third-party servers (installed once, cached across runs; see ``tests/support/mcp_install.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mcp_install import (
    mcp_filesystem_server,
    mcp_memory_server,
    mcp_npm_servers,
    mcp_time_server,
)
from tests.support.mcp_servers import HttpTestServer, stdio_config
from troupe.runtime.config import McpServerConfig
from troupe.runtime.llm.types import LLMRequest, LLMResponse, TokenCallback, Usage

__all__ = ["mcp_filesystem_server", "mcp_memory_server", "mcp_npm_servers", "mcp_time_server"]
"""Re-exported session fixtures (listed so linters see them used)."""


@pytest.fixture(scope="module")
def mcp_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpTestServer]:
    server = HttpTestServer(tmp_path_factory.mktemp("mcp-http") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_http_server(tmp_path: Path) -> Iterator[HttpTestServer]:
    """A server of this test's own (for tests that crash it)."""
    server = HttpTestServer(tmp_path / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["stdio", "http"])
def make_cfg(request: pytest.FixtureRequest) -> Callable[..., McpServerConfig]:
    """Config factory for our test server, once per transport."""
    if request.param == "stdio":
        return stdio_config
    server: HttpTestServer = request.getfixturevalue("mcp_http_server")
    return server.config


class EchoModel:
    """A deterministic LLMClient: says which profile answered, what it was asked, and its limits."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.model_name = f"echo-{profile}"
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        self.requests.append(request)
        system = next((m.content for m in request.messages if m.role == "system"), None)
        question = request.messages[-1].content
        text = f"[{self.profile}] {question} (max_tokens={request.max_tokens}, system={system!r})"
        return LLMResponse(text=text, model=self.model_name, usage=Usage(tokens_in=11, tokens_out=7),
                           finish_reason="stop", profile=self.profile)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def echo_models() -> dict[str, EchoModel]:
    """The EchoModels built so far, by profile (``build_llm`` for :func:`troupe.tools.mcp.llm_sampler`)."""
    return {}


@pytest.fixture
async def mcp_manager(echo_models: dict[str, EchoModel]) -> AsyncIterator[Any]:
    from troupe.tools.mcp import McpManager, llm_sampler

    def build(profile: str) -> EchoModel:
        return echo_models.setdefault(profile, EchoModel(profile))

    manager = McpManager(sampler=llm_sampler(build, default_profile="default-model"))
    try:
        yield manager
    finally:
        await manager.close()
