"""Install the real third-party MCP servers the tests run against, each in its own environment.

Third-party servers never go into the project's venv (a server written for another SDK version
could break it, or be broken by it): ``mcp-server-time`` gets a venv of its own, the npm servers
an npm prefix folder of their own, all under ``~/.cache/troupe-tests/mcp/`` (or
``$TROUPE_TEST_CACHE/mcp``), pinned, and cached across runs. A file lock keeps two test processes
from installing at once. When an install fails the tests that need it are skipped, except under
CI (``CI`` set), where they fail: a green CI run must have run them.

Use as session fixtures (re-exported by ``tests/tools/conftest.py``): ``mcp_time_server``,
``mcp_filesystem_server`` and ``mcp_memory_server`` give the path of each server's executable.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TIME_SERVER = "mcp-server-time==2026.10.19"
TIME_SERVER_SDK = "mcp==2.3.0"
"""The SDK the time server was tested with (pinned too, so a new SDK release cannot change it)."""
NPM_FILESYSTEM = "@modelcontextprotocol/server-filesystem@2026.8.31"
NPM_MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"
INSTALL_TIMEOUT_S = 600


def cache_root() -> Path:
    base = os.environ.get("TROUPE_TEST_CACHE") or "~/.cache/troupe-tests"
    return Path(base).expanduser() / "mcp"


class InstallError(RuntimeError):
    pass


@contextmanager
def install_lock() -> Iterator[None]:
    """One installer at a time across processes (pytest-xdist workers, parallel runs)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], *, cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError(f"{' '.join(cmd)}: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        raise InstallError(f"{' '.join(cmd)} exited with {proc.returncode}: {tail}")


def _slug(*specs: str) -> str:
    return "_".join(s.lstrip("@").replace("/", "-").replace("==", "-").replace("@", "-") for s in specs)


def install_venv(venv: Path, *specs: str) -> Path:
    """A venv of its own at ``venv`` with ``specs`` installed (once: cached, under the install lock); its python."""
    python = venv / "bin" / "python"
    done = venv / ".installed"
    with install_lock():
        if done.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *specs])
        if not python.exists():
            raise InstallError(f"{' '.join(specs)} installed but {python} is missing")
        done.write_text(" ".join(specs) + "\n")
    return python


def install_time_server() -> Path:
    """``mcp-server-time`` in a venv of its own; returns its executable."""
    venv = cache_root() / _slug(TIME_SERVER, TIME_SERVER_SDK)
    exe = venv / "bin" / "mcp-server-time"
    done = venv / ".installed"
    with install_lock():
        if done.exists() and exe.exists():
            return exe
        shutil.rmtree(venv, ignore_errors=True)
        python = shutil.which("python3") or sys.executable
        _run([python, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              TIME_SERVER, TIME_SERVER_SDK])
        if not exe.exists():
            raise InstallError(f"{TIME_SERVER} installed but {exe} is missing")
        done.write_text(f"{TIME_SERVER} {TIME_SERVER_SDK}\n")
    return exe


def install_npm_servers() -> dict[str, Path]:
    """The npm servers in one prefix folder; returns ``{"filesystem": bin, "memory": bin}``."""
    prefix = cache_root() / _slug(NPM_FILESYSTEM, NPM_MEMORY)
    bins = {"filesystem": prefix / "node_modules" / ".bin" / "mcp-server-filesystem",
            "memory": prefix / "node_modules" / ".bin" / "mcp-server-memory"}
    done = prefix / ".installed"
    with install_lock():
        if done.exists() and all(p.exists() for p in bins.values()):
            return bins
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise InstallError("node and npm are needed for the npm MCP servers (apt-get install nodejs npm)")
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        _run([npm, "install", "--prefix", str(prefix), "--save-exact", "--no-audit", "--no-fund",
              "--loglevel=error", NPM_FILESYSTEM, NPM_MEMORY])
        missing = [str(p) for p in bins.values() if not p.exists()]
        if missing:
            raise InstallError(f"npm install finished but {', '.join(missing)} is missing")
        done.write_text(f"{NPM_FILESYSTEM} {NPM_MEMORY}\n")
    return bins


def _unavailable(what: str, error: Exception) -> None:
    message = f"could not install {what}: {error}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this fails instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mcp_time_server() -> Path:
    try:
        return install_time_server()
    except InstallError as e:
        _unavailable(TIME_SERVER, e)
        raise


@pytest.fixture(scope="session")
def mcp_npm_servers() -> dict[str, Path]:
    try:
        return install_npm_servers()
    except InstallError as e:
        _unavailable(f"{NPM_FILESYSTEM} and {NPM_MEMORY}", e)
        raise


@pytest.fixture(scope="session")
def mcp_filesystem_server(mcp_npm_servers: dict[str, Path]) -> Path:
    return mcp_npm_servers["filesystem"]


@pytest.fixture(scope="session")
def mcp_memory_server(mcp_npm_servers: dict[str, Path]) -> Path:
    return mcp_npm_servers["memory"]


def main() -> None:
    """``python -m tests.support.mcp_install``: install everything now (e.g. in a CI setup step)."""
    print(install_time_server())
    for path in install_npm_servers().values():
        print(path)


if __name__ == "__main__":
    main()


BFCL_EVAL = "bfcl-eval==2026.3.23"
"""The BFCL data the suites in evals/suites were converted from (for the converter's own test)."""


def install_bfcl_eval() -> Path:
    """``bfcl-eval`` without its dependencies, into a folder of its own (put it on ``sys.path``)."""
    target = cache_root() / _slug(BFCL_EVAL)
    done = target / ".installed"
    with install_lock():
        if not done.exists():
            _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), BFCL_EVAL])
            done.write_text(BFCL_EVAL + "\n")
    return target


@pytest.fixture(scope="session")
def bfcl_eval_path() -> Path:
    try:
        return install_bfcl_eval()
    except InstallError as e:
        _unavailable(BFCL_EVAL, e)
        raise
