"""Fixtures for the MCP tests: our own test server (stdio and streamable HTTP) and the real
third-party servers (installed once, cached across runs; see ``tests/support/mcp_install.py``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import McpServerConfig
from runtime.llm.types import LLMRequest, LLMResponse, TokenCallback, Usage
from tests.support.mcp_install import (
    mcp_filesystem_server,
    mcp_memory_server,
    mcp_npm_servers,
    mcp_time_server,
)

__all__ = ["mcp_filesystem_server", "mcp_memory_server", "mcp_npm_servers", "mcp_time_server"]
"""Re-exported session fixtures (listed so linters see them used)."""

REPO = Path(__file__).resolve().parents[2]
TEST_SERVER_MODULE = "tests.support.mcp_test_server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpTestServer:
    """Our test server over streamable HTTP, as a child process on a free loopback port."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout_s: float = 20.0) -> HttpTestServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", TEST_SERVER_MODULE, "--http", str(self.port)],
                                         cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"test MCP server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self  # uvicorn listens only after the app started
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"test MCP server did not listen on {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def config(self, **overrides: Any) -> McpServerConfig:
        return McpServerConfig(url=self.url, **{"timeout_s": 10.0, "connect_timeout_s": 10.0, **overrides})


def stdio_config(**overrides: Any) -> McpServerConfig:
    defaults: dict[str, Any] = {"cwd": str(REPO), "timeout_s": 10.0, "connect_timeout_s": 20.0}
    return McpServerConfig(command=sys.executable, args=["-m", TEST_SERVER_MODULE, "--stdio"], **{**defaults, **overrides})


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
    """The EchoModels built so far, by profile (``build_llm`` for :func:`tools.mcp.llm_sampler`)."""
    return {}


@pytest.fixture
async def mcp_manager(echo_models: dict[str, EchoModel]) -> AsyncIterator[Any]:
    from tools.mcp import McpManager, llm_sampler

    def build(profile: str) -> EchoModel:
        return echo_models.setdefault(profile, EchoModel(profile))

    manager = McpManager(sampler=llm_sampler(build, default_profile="default-model"))
    try:
        yield manager
    finally:
        await manager.close()
