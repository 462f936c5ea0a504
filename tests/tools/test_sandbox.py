"""The sandbox (bubblewrap), for real: what a sandboxed shell or cpu tool can and cannot reach, its
limits, and that nothing it starts outlives its call. No mocks of the sandbox itself.

Where bubblewrap is missing these tests skip locally and FAIL under CI (``CI`` set): the sandbox is
a feature, and a CI machine that cannot make one must say so.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from troupe.runtime.config import AgentSpec, WorkspaceConfig
from troupe.runtime.errors import ToolExecutionError, ToolTimeoutError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.safety import SandboxConfig, SecretRef
from troupe.tools.builtins.shell import shell
from troupe.tools.context import ToolContext
from troupe.tools.sandbox import has_scope, sandbox_status
from troupe.tools.sandbox.limits import CGROUP_ROOT, PARENT

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def bwrap_here() -> None:
    status = sandbox_status()
    if not status.available:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to make a sandbox: {status.message()}")
        pytest.skip(f"no sandbox on this machine: {status.message()}")


def make_ctx(workspace: Path, *, scopes: tuple[str, ...] = (), secrets: dict[str, SecretRef] | None = None,
             **sandbox: Any) -> ToolContext:
    spec = AgentSpec(id="lead", permissions={"level": "L3", "scopes": ["shell:exec", *scopes]})
    return ToolContext(
        session_id=SessionId("s-sbx"), run_id=RunId("r-sbx"), agent=AgentId("lead"), services=None,  # type: ignore[arg-type]
        spec=spec, workspace=workspace, workspace_config=WorkspaceConfig(shell_timeout_s=10),
        sandbox=SandboxConfig(**sandbox), secrets=secrets or {},
    )


async def sh(ctx: ToolContext, command: str, **kw: Any) -> str:
    return await shell.invoke({"command": command, **kw}, ctx)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to the workspace, not in it."""
    path = tmp_path / "outside.txt"
    path.write_text("the host's secret plans")
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"


async def beating(path: Path, within: float = 1.0) -> bool:
    """Whether something still appends to ``path`` (its size grows within ``within`` seconds)."""
    before = path.stat().st_size if path.exists() else 0
    await asyncio.sleep(within)
    return (path.stat().st_size if path.exists() else 0) != before


# --- what it can reach --------------------------------------------------------------------------
async def test_cannot_read_outside_its_workspace(ws: Path, outside: Path) -> None:
    ctx = make_ctx(ws)
    out = await sh(ctx, f"cat {outside}; cat {REPO}/pyproject.toml; ls {REPO}; echo mine > own.txt; cat own.txt")
    assert "secret plans" not in out and "[project]" not in out
    assert f"cat: {outside}: No such file or directory" in out
    assert f"cat: {REPO}/pyproject.toml: No such file or directory" in out
    assert out.endswith("mine\n[exit code 0]")
    assert (ws / "own.txt").read_text() == "mine\n"  # the workspace is the host's own folder, read-write


async def test_sandbox_off_runs_unsandboxed(ws: Path, outside: Path) -> None:
    out = await sh(make_ctx(ws, enabled=False), f"cat {outside}")
    assert out == "the host's secret plans\n[exit code 0]"


async def test_read_only_paths_under_tmp_show_over_the_fresh_tmp(ws: Path, tmp_path: Path) -> None:
    """A virtualenv or data folder under /tmp (a CI checkout's) stays visible: the sandbox's fresh /tmp
    is mounted before the read-only binds, not on top of them."""
    data = tmp_path / "venv-like"
    data.mkdir()
    (data / "marker.txt").write_text("visible")
    out = await sh(make_ctx(ws, read_only=[str(data)]), f"cat {data}/marker.txt; touch {data}/new 2>&1 | head -1")
    assert out.startswith("visible") and "Read-only file system" in out
    assert not (data / "new").exists()


async def test_cannot_write_the_project_or_the_system(ws: Path) -> None:
    target = REPO / f"escaped-{uuid.uuid4().hex}"
    out = await sh(make_ctx(ws), f"touch {target}; echo x > /usr/escaped; mkdir -p {REPO}/tests && echo made")
    assert not target.exists()
    assert not Path("/usr/escaped").exists()
    assert "Read-only file system" in out  # /usr is read-only
    # the project does not exist inside: a mkdir -p there writes into the sandbox's own root, not the host's
    assert not (REPO / "tests" / "escaped").exists()


async def test_environment_home_path_and_secrets(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_DB_URL", "postgres://user:hunter2@db")
    monkeypatch.setenv("TROUPE_VISIBLE", "yes")
    ctx = make_ctx(ws, secrets={"db": SecretRef(env="TEAM_DB_URL")})
    out = await sh(ctx, 'echo "home=$HOME db=${TEAM_DB_URL:-unset} visible=$TROUPE_VISIBLE"; echo "$PATH"; '
                        "whoami >/dev/null && echo users-ok")
    real = os.path.realpath(ws)
    assert f"home={real} db=unset visible=yes" in out
    assert "/usr/bin" in out and "/work" not in out.split("\n")[1]
    assert "users-ok" in out


# --- network ------------------------------------------------------------------------------------
@pytest.fixture
async def server() -> Any:
    """A loopback TCP server that records what it receives."""
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read(100))
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield port, got
    srv.close()
    await srv.wait_closed()


async def test_no_network_without_the_scope(ws: Path, server: Any) -> None:
    port, got = server
    out = await sh(make_ctx(ws), f"echo hello > /dev/tcp/127.0.0.1/{port} && echo sent")
    assert "Connection refused" in out and "sent" not in out  # its loopback is its own
    assert got == []


@pytest.mark.parametrize("scope", ["network:external", "network:*", "*"])
async def test_network_with_the_scope(ws: Path, server: Any, scope: str) -> None:
    port, got = server
    out = await sh(make_ctx(ws, scopes=(scope,)), f"echo hello > /dev/tcp/127.0.0.1/{port} && echo sent")
    assert out == "sent\n[exit code 0]"
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert got == [b"hello\n"]


def test_scope_rule_is_the_guardrails_rule() -> None:
    from troupe.runtime.agent.guardrails import _has_scope

    cases = [["network:external"], ["network:*"], ["*"], ["network:internal"], ["net:*"], ["file:*"], []]
    for granted in cases:
        assert has_scope(granted, "network:external") == _has_scope(granted, "network:external"), granted


# --- nothing outlives the call ------------------------------------------------------------------
async def test_cannot_outlive_its_timeout(ws: Path) -> None:
    ctx = make_ctx(ws)
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError):  # a child in a session of its own too: setsid escapes the process group
        await sh(ctx, "(while :; do echo x >> beat; sleep 0.05; done) & "
                      "setsid sh -c 'while :; do echo y >> beat2; sleep 0.05; done' & sleep 30", timeout_s=0.7)
    assert time.monotonic() - started < 4
    assert (ws / "beat").exists() and (ws / "beat2").exists()
    assert not await beating(ws / "beat", 0.5)
    assert not await beating(ws / "beat2", 0.1)


async def test_background_children_stop_when_the_command_ends(ws: Path) -> None:
    out = await sh(make_ctx(ws), "setsid sh -c 'while :; do echo y >> beat; sleep 0.05; done' >/dev/null 2>&1 & "
                                 "sleep 0.2; echo started")
    assert "started\n[exit code 0]\n[background processes the command left running were stopped" in out
    assert not await beating(ws / "beat", 0.5)
    assert not list((CGROUP_ROOT / "pids" / PARENT).glob(f"{os.getpid()}-*"))  # its cgroups are removed


async def test_processes_still_being_torn_down_are_not_left_running(ws: Path) -> None:
    """After a sandbox's first process exits, the kernel kills the rest of its pid namespace; on a
    loaded machine they stay listed in the call's cgroup for a moment. That is not a process the
    command left running (a CI run reported a plain `pwd` as having left background processes)."""
    import subprocess

    from troupe.tools.sandbox.confine import Confinement
    from troupe.tools.sandbox.policy import SandboxRequest

    ws.mkdir(parents=True, exist_ok=True)
    box = Confinement(SandboxRequest(workspace=str(ws)), tool="shell")
    if box.cgroup is None:
        pytest.skip("no writable cgroups here: nothing is listed after the sandbox ends")
    argv = [*box.cgroup.join_prefix(), "sleep"]
    dying = subprocess.Popen([*argv, "0.2"])
    staying = None
    try:
        await asyncio.sleep(0.05)
        assert box.alive()
        assert not await box.lingering(grace_s=2.0)  # gone within the grace: not left running
        dying.wait()
        staying = subprocess.Popen([*argv, "30"])
        await asyncio.sleep(0.05)
        assert await box.lingering(grace_s=0.2)  # still there after the grace: left running
    finally:
        box.close()
        for p in (dying, staying):
            if p is not None:
                p.kill()
                p.wait()


async def test_fork_bomb_is_contained(ws: Path) -> None:
    before = len(psutil.pids())
    ctx = make_ctx(ws, max_processes=64)
    started = time.monotonic()
    try:
        out = await sh(ctx, ":(){ :|:& };:", timeout_s=2)
    except ToolTimeoutError as e:  # its first bash may still be retrying a fork the limit refused: killed
        out = str(e)
    assert time.monotonic() - started < 5
    assert "Resource temporarily unavailable" in out or out.startswith("(no output)")
    await asyncio.sleep(0.5)
    assert len(psutil.pids()) < before + 20  # back to normal (other processes of the machine come and go)


async def test_process_limit_is_enforced(ws: Path) -> None:
    status = sandbox_status()
    if status.limits != "cgroup" and (status.limits != "prlimit" or os.geteuid() == 0):
        pytest.skip(f"process limits cannot be enforced here: {status.limits_note}")
    ctx = make_ctx(ws, max_processes=16)
    try:
        out = await sh(ctx, "for i in $(seq 40); do sleep 3 & done; wait; echo all-started", timeout_s=2)
    except ToolTimeoutError as e:  # bash retries a refused fork, with back-off
        out = str(e)
    assert "Resource temporarily unavailable" in out and "all-started" not in out


async def test_memory_limit_is_enforced(ws: Path) -> None:
    status = sandbox_status()
    if status.limits == "none":
        pytest.skip(f"memory limits cannot be enforced here: {status.limits_note}")
    out = await sh(make_ctx(ws, memory_mb=64), "python3 -c \"b = b'x' * (256 << 20); print('allocated', len(b))\"")
    assert "allocated" not in out
    if status.limits == "cgroup":
        assert "[killed by SIGKILL (exit code 137)]" in out
        assert "[the sandbox's memory limit (64 MB) was reached: the kernel killed the command]" in out
    else:
        assert "MemoryError" in out
    assert await sh(make_ctx(ws, memory_mb=64), "python3 -c \"print(len(b'x' * (8 << 20)))\"") == \
        "8388608\n[exit code 0]"


# --- when no sandbox can be made ----------------------------------------------------------------
async def test_refuses_to_run_when_the_sandbox_cannot_be_made(ws: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap on PATH: the probe (cached per PATH) asks again
    status = sandbox_status()
    assert not status.available
    with pytest.raises(ToolExecutionError) as info:
        await sh(make_ctx(ws), "echo ran > ran.txt")
    assert str(info.value) == (
        "tool 'shell' refused to run: the sandbox cannot be made on this machine: bubblewrap (bwrap) is not "
        "installed or not on PATH. To fix it: install it (apt-get install bubblewrap; dnf install bubblewrap; "
        "apk add bubblewrap), or, to run these tools unsandboxed on purpose, set 'sandbox: off' in the team file")
    assert info.value.fields == {"tool": "shell", "reason": "sandbox_unavailable"}
    assert not (ws / "ran.txt").exists()


def git(*args: str) -> str:
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], check=True, env=env, capture_output=True, text=True).stdout


async def test_git_works_in_a_worktree_workspace(tmp_path: Path) -> None:
    repo, ws = tmp_path / "repo", tmp_path / "wt"
    git("init", "-q", str(repo))
    git("-C", str(repo), "commit", "-q", "--allow-empty", "-m", "root")
    git("-C", str(repo), "worktree", "add", "-q", str(ws), "-b", "session")
    (repo / "main-only.txt").write_text("the repository's own working tree")
    out = await sh(make_ctx(ws), "git status --short --branch; echo new > new.txt && git add new.txt && "
                                 "git -c user.email=t@t -c user.name=t commit -qm new && echo committed; "
                                 f"cat {repo}/main-only.txt")
    assert out.startswith("## session\ncommitted\n")
    assert "No such file or directory" in out  # the repository's .git is there, its working tree is not
    assert git("-C", str(repo), "log", "--oneline", "session").count("\n") == 2
