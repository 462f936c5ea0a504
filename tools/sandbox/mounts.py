"""The bubblewrap command line: which host paths a sandbox sees, and how.

Inside: ``/usr`` and a few files of ``/etc`` read-only (``/bin``, ``/lib``... as the host has them:
symlinks into ``/usr``, or read-only folders), the Python install the tools run on read-only, a fresh
``/proc``, ``/dev`` and ``/tmp``, and the workspace read-write at its own path (the working directory).
Everything else of the host (home folders, the project, other sessions' workspaces) is absent. A
workspace that is a git worktree also sees its repository's ``.git`` folder (read-write: commits).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from troupe.runtime.safety import SandboxConfig

TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Folders that are symlinks into ``/usr`` on merged-/usr systems (and real folders on older ones)."""
ETC = ("resolv.conf", "hosts", "host.conf", "nsswitch.conf", "passwd", "group", "localtime", "ld.so.cache",
       "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates", "ca-certificates.conf", "pki", "alternatives",
       "mime.types", "protocols", "services", "bash.bashrc", "profile", "inputrc")
"""What of ``/etc`` a sandbox sees (read-only): name resolution, users, TLS roots, the dynamic linker."""
SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in TOP_LEVEL:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _outside_usr(paths: Iterable[str]) -> list[str]:
    """Real paths not already visible through ``/usr``, without ones nested in another."""
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    kept: list[str] = []
    for p in real:
        if p == "/usr" or p.startswith("/usr/") or any(p.startswith(k.rstrip("/") + "/") or p == k for k in kept):
            continue
        kept.append(p)
    return kept


def python_paths(*, with_packages: bool) -> list[str]:
    """The Python install this process runs on; with ``with_packages`` also its environment's
    site-packages and the folders ``troupe`` itself is imported from (a cpu tool's child needs them)."""
    paths = [sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    if with_packages:
        paths += [sys.prefix, *(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))]
        for pkg in ("runtime", "tools", "actors", "evals"):  # located, not imported
            spec = importlib.util.find_spec(f"troupe.{pkg}")
            paths += list(spec.submodule_search_locations or []) if spec is not None else []
    return _outside_usr(paths)


def git_paths(workspace: str) -> list[str]:
    """A workspace that is a git worktree keeps its repository data outside itself (``.git`` is a file:
    ``gitdir: <repo>/.git/worktrees/<name>``): the repository's ``.git`` folder, so that git works in it.
    Only ``.git`` — the repository's own working tree stays absent."""
    marker = Path(workspace) / ".git"
    if not marker.is_file():
        return []
    try:
        first = marker.read_text().splitlines()[0]
    except (OSError, IndexError):
        return []
    if not first.startswith("gitdir:"):
        return []
    gitdir = (Path(workspace) / first.removeprefix("gitdir:").strip()).resolve()
    common = gitdir
    with contextlib.suppress(OSError, IndexError):
        common = (gitdir / (gitdir / "commondir").read_text().splitlines()[0].strip()).resolve()
    return [str(common)] if common.is_dir() else []


def bwrap_argv(bwrap: str, config: SandboxConfig, workspace: str, *, network: bool, status_fd: int | None,
               python: list[str]) -> list[str]:
    """``bwrap`` with every option, up to (not including) the command to run inside."""
    args = [bwrap, "--unshare-all"]
    if network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session", *system_mounts()]
    # The fresh /tmp first: bwrap mounts in order, so a later bind under /tmp (a virtualenv or a
    # workspace in /tmp, as a CI checkout has) shows on top of it instead of being hidden by it.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in (*python, *config.read_only):
        args += ["--ro-bind-try", path, path]
    args += ["--bind", workspace, workspace]
    for path in git_paths(workspace):
        args += ["--bind", path, path]
    for path in config.read_write:
        args += ["--bind-try", path, path]
    args += ["--chdir", workspace]
    if status_fd is not None:
        args += ["--json-status-fd", str(status_fd)]
    return args


def sandbox_env(base: dict[str, str], workspace: str) -> dict[str, str]:
    """The environment inside: the caller's (already without secrets), HOME the workspace, a sane PATH."""
    return {**base, "HOME": workspace, "PATH": SANE_PATH, "TMPDIR": "/tmp", "PWD": workspace}


def real_workspace(path: str | os.PathLike[str]) -> str:
    return str(Path(os.path.realpath(path)))


__all__ = ["SANE_PATH", "bwrap_argv", "git_paths", "python_paths", "real_workspace", "sandbox_env", "system_mounts"]
