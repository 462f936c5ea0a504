"""Process and memory limits for one sandboxed call: a cgroup (v1) of its own, or ``prlimit``.

With cgroups (root, or a delegated hierarchy) each call gets ``pids/troupe/<id>`` (``pids.max``) and
``memory/troupe/<id>`` (``memory.limit_in_bytes``); the sandbox's first process writes its own pid
into both before it execs bubblewrap, so everything it starts is counted, and killing every pid
listed there stops the call whatever sessions or namespaces its processes made. The folders are
removed when the call ends; ones left by a process that died are removed by the next call.
Without cgroups, ``prlimit --nproc --as`` limits the sandbox's processes (weaker: per user, per process).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory")
PARENT = "troupe"
_counter = itertools.count()


def cgroups_writable(root: Path = CGROUP_ROOT) -> str | None:
    """``None`` when per-call cgroups can be made here, else why not."""
    for controller in CONTROLLERS:
        base = root / controller
        if not (base / "cgroup.procs").exists():
            return f"no cgroup v1 '{controller}' hierarchy at {base}"
        try:
            (base / PARENT).mkdir(exist_ok=True)
        except OSError as e:
            return f"cannot create {base / PARENT} ({e.strerror})"
        if not os.access(base / PARENT, os.W_OK):
            return f"{base / PARENT} is not writable by this user"
    return None


def _pids_in(folder: Path) -> list[int]:
    try:
        return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _owner_alive(name: str) -> bool:
    owner = name.split("-", 1)[0]
    if not owner.isdigit():
        return True
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CallCgroup:
    """The cgroups of one call (``pids`` and ``memory``), created on construction."""

    def __init__(self, *, memory_mb: int, max_processes: int, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self.name = f"{os.getpid()}-{next(_counter)}-{time.monotonic_ns() % 1_000_000}"
        self.folders = [root / c / PARENT / self.name for c in CONTROLLERS]
        self.sweep_stale(root)
        pids, memory = self.folders
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=False)
        (pids / "pids.max").write_text(str(max_processes))
        limit = str(memory_mb * 1024 * 1024)
        (memory / "memory.limit_in_bytes").write_text(limit)
        with contextlib.suppress(OSError):  # swap accounting may be off: then there is no swap limit to set
            (memory / "memory.memsw.limit_in_bytes").write_text(limit)

    def join_prefix(self) -> list[str]:
        """An argv prefix that puts its own process in these cgroups, then execs the rest of the argv."""
        writes = " && ".join(f"echo $$ > {shlex.quote(str(f / 'cgroup.procs'))}" for f in self.folders)
        return ["/bin/sh", "-c", f'{writes} && exec "$@"', "troupe-sandbox"]

    def pids(self) -> list[int]:
        return sorted({p for f in self.folders for p in _pids_in(f)})

    def kill_all(self) -> None:
        """SIGKILL every process in the call's cgroups, until none is left (a fork bomb keeps forking)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        """Whether the memory limit was hit (the kernel killed a process of the call for it)."""
        memory = self.folders[1]
        try:  # "oom_kill N" in memory.oom_control (kernels >= 4.13); failcnt counts hits of the limit
            for line in (memory / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
            return int((memory / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        """Kill what is left and remove the folders (a cgroup folder goes once it has no processes)."""
        self.kill_all()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # processes still exiting
                    time.sleep(0.01)

    @staticmethod
    def sweep_stale(root: Path = CGROUP_ROOT) -> None:
        """Remove the cgroups of calls whose process died without removing them."""
        for controller in CONTROLLERS:
            parent = root / controller / PARENT
            with contextlib.suppress(OSError):
                for folder in parent.iterdir():
                    if folder.is_dir() and not _owner_alive(folder.name):
                        for pid in _pids_in(folder):
                            with contextlib.suppress(OSError):
                                os.kill(pid, signal.SIGKILL)
                        with contextlib.suppress(OSError):
                            folder.rmdir()


def prlimit_prefix(prlimit: str, *, memory_mb: int, max_processes: int) -> list[str]:
    """``prlimit`` limits for when cgroups cannot be made (``--nproc`` counts the user's processes)."""
    return [prlimit, f"--nproc={max_processes}", f"--as={memory_mb * 1024 * 1024}", "--"]


__all__ = ["CGROUP_ROOT", "CallCgroup", "cgroups_writable", "prlimit_prefix"]
