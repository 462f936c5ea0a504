"""Our own MCP test server as a child process (streamable HTTP) or a stdio config."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from troupe.runtime.config import McpServerConfig

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


__all__ = ["REPO", "TEST_SERVER_MODULE", "HttpTestServer", "free_port", "stdio_config"]
