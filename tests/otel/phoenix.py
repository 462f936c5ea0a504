"""A real Arize Phoenix for the tests: ``phoenix serve`` on free loopback ports, offline, in its own
working directory; its REST API read back (``GET /v1/projects/NAME/spans``, stored asynchronously)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phoenix_command() -> str | None:
    """The ``phoenix`` script next to this interpreter (the dev extra installs it), else on PATH."""
    here = Path(sys.executable).with_name("phoenix")
    return str(here) if here.exists() else shutil.which("phoenix")


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (loopback)
        return json.load(response)


@dataclass
class Phoenix:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def spans(self, project: str = "default") -> list[dict[str, Any]]:
        """Every span of a project (all pages)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = _get(f"{self.url}/v1/projects/{project}/spans?{query}")
            out += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def trace(self, trace_id: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The spans of one trace, polled until ``expected`` of them are stored (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.spans() if s["context"]["trace_id"] == trace_id]
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.3)


@contextmanager
def running_phoenix(workdir: Path) -> Iterator[Phoenix]:
    command = phoenix_command()
    if command is None:
        raise FileNotFoundError("no `phoenix` command: pip install arize-phoenix (the dev extra has it)")
    port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(workdir), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc_port),
           "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false", "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = workdir / "phoenix.log"
    with log.open("wb") as out:
        process = subprocess.Popen([command, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    phoenix = Phoenix(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"phoenix serve exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                _get(f"{phoenix.url}/v1/projects", timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"phoenix did not answer in {START_TIMEOUT_S:.0f} s: "
                                       f"{log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield phoenix
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
