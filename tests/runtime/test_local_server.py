"""The embedded local model, for real: Qwen2.5-Coder-0.5B served by xllamacpp in a child process.

One server for the whole module (starting one costs a few seconds); the last test stops it.
Needs the 'local' extra (xllamacpp and the weight packages); skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")

from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.local import serve as serve_mod
from troupe.runtime.llm.local.provider import LocalModelClient
from troupe.runtime.llm.local.server import LocalServer
from troupe.runtime.llm.local.weights import check_model_available
from troupe.runtime.llm.types import ChatMessage, LLMRequest, ToolSchema

pytestmark = pytest.mark.local_model

try:
    check_model_available("default")
except ConfigError as e:  # pragma: no cover - depends on the machine
    if os.environ.get("CI"):  # CI installs the 'local' extra: a missing model there is a failure, not a skip
        raise
    pytest.skip(f"the default local model is not installed: {e.message}", allow_module_level=True)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    if not sys.platform.startswith("linux"):
        return _kill0(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _kill0(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    srv = LocalServer("default", log_dir=tmp_path_factory.mktemp("logs"))
    t0 = time.monotonic()
    srv.start()
    srv.start_seconds = time.monotonic() - t0  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def test_starts_on_a_free_loopback_port(server: LocalServer) -> None:
    assert server.base_url is not None and server.base_url.startswith("http://127.0.0.1:")
    assert int(server.base_url.rsplit(":", 1)[1]) > 0
    assert server.pid is not None and _alive(server.pid)
    with urllib.request.urlopen(server.base_url + "/v1/models", timeout=5) as r:
        ids = {m.get("id") or m.get("name") for m in json.load(r).get("data", [])}
    assert "qwen2.5-coder-0.5b" in ids


def _client(server: LocalServer, **profile: object) -> LocalModelClient:
    assert server.base_url is not None
    url = server.base_url

    async def resolver(_model: str | None) -> str:
        return url

    return LocalModelClient(ModelProfile(provider="local", model="default", temperature=0, **profile), resolver=resolver)


async def test_streams_tokens_through_the_openai_client(server: LocalServer) -> None:
    client = _client(server)
    tokens: list[str] = []
    stamps: list[float] = []

    def on_token(t: str) -> None:
        stamps.append(time.monotonic())
        tokens.append(t)

    t0 = time.monotonic()
    resp = await client.complete(
        LLMRequest(messages=[ChatMessage(role="user", content="Name three colours, comma separated.")], max_tokens=24),
        on_token=on_token,
    )
    await client.aclose()
    assert len(tokens) > 1 and "".join(tokens) == resp.text and resp.text.strip()
    assert resp.model == "qwen2.5-coder-0.5b" and resp.usage.tokens_out > 0
    print(f"\nserver start {server.start_seconds:.2f}s; first token {stamps[0] - t0:.2f}s; "  # type: ignore[attr-defined]
          f"{resp.usage.tokens_out} tokens in {time.monotonic() - t0:.2f}s")


CALC = ToolSchema(
    name="calculator",
    description="Evaluate an arithmetic expression and return the result.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. 2*(3+4)"}},
        "required": ["expression"],
    },
)


async def test_a_declared_tool_is_called(server: LocalServer) -> None:
    client = _client(server)
    resp = await client.complete(
        LLMRequest(
            messages=[
                ChatMessage(role="system", content="You are a helpful assistant. Use the tools you are given."),
                ChatMessage(role="user", content="What is 1234 * 5678? Use the calculator tool."),
            ],
            tools=[CALC],
            max_tokens=64,
        )
    )
    await client.aclose()
    assert resp.tool_calls, f"no tool call; the model wrote {resp.text!r}"
    call = resp.tool_calls[0]
    assert call.name == "calculator"
    assert "1234" in call.parsed_arguments()["expression"]


def test_output_goes_to_the_log_file_never_the_terminal(server: LocalServer) -> None:
    assert server.log_path is not None and server.log_path.is_file()
    text = server.log_path.read_text(errors="replace")
    assert "troupe-serve: serving" in text and "listening on" in text
    assert server.pid is not None
    if sys.platform.startswith("linux"):
        for fd in (1, 2):
            assert os.readlink(f"/proc/{server.pid}/fd/{fd}") == str(server.log_path)
        assert os.readlink(f"/proc/{server.pid}/fd/0") == "/dev/null"


def test_an_explicit_port_that_is_taken_is_a_config_error_naming_it(server: LocalServer) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} .*already in use"):
            LocalServer("default", port=port).start()


def test_a_port_taken_between_check_and_bind_is_still_named(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The parent's check says free; the child finds it taken (the race) and exits before loading.
    monkeypatch.setattr(serve_mod, "port_free", lambda _port: True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        srv = LocalServer("default", port=port, log_dir=tmp_path)
        with pytest.raises(ConfigError, match=f"port {port}"):
            srv.start()
        assert srv.pid is None


def test_the_server_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG through the spawner thread, checked with a stand-in child (no model load)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    script = (
        "import sys, threading\n"
        "from troupe.runtime.llm.local import server as s\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(s._spawn(['sleep', '60'], preexec_fn=s._set_pdeathsig)))\n"
        "t.start(); t.join()  # spawned from a thread that is gone now: the child must survive that\n"
        "print(out[0].pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.3)
        assert _alive(child), "the child died when the spawning thread exited"
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_stop_leaves_no_process_and_is_idempotent(server: LocalServer) -> None:
    pid = server.pid
    assert pid is not None
    server.stop()
    assert not _alive(pid)
    assert server.pid is None and server.base_url is None
    server.stop()


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 256)  # passes the magic check, fails to load
    srv = LocalServer(str(broken), log_dir=tmp_path / "logs")
    with pytest.raises(ConfigError) as ei:
        srv.start()
    text = str(ei.value)
    assert "exited with code" in text and str(srv.log_path) in text and "--- last lines ---" in text
    assert "the server did not start" in text
    assert srv.pid is None
