"""Can a sandbox be made on this machine? :func:`sandbox_status` says, and if not, why and how to fix it.

It looks for bubblewrap on ``PATH``, makes one tiny sandbox (every namespace, ``true`` inside) and
checks how limits can be set: per-call cgroups, else ``prlimit``, else none (then it says so).
The answer is cached per ``PATH`` (a process asks once; a test that changes ``PATH`` asks again).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import Literal

from pydantic import BaseModel

from troupe.tools.sandbox.limits import cgroups_writable
from troupe.tools.sandbox.mounts import system_mounts

OFF_HINT = "or, to run these tools unsandboxed on purpose, set 'sandbox: off' in the team file"


class SandboxStatus(BaseModel):
    """The probe's answer."""

    available: bool
    reason: str = ""
    """Why no sandbox can be made here (empty when one can)."""
    fix: str = ""
    """How to make one possible."""
    bwrap: str | None = None
    limits: Literal["cgroup", "prlimit", "none"] = "none"
    limits_note: str = ""
    """Why limits are weaker than per-call cgroups, when they are."""
    prlimit: str | None = None

    def message(self) -> str:
        """The refusal a model (and its operator) reads."""
        return f"the sandbox cannot be made on this machine: {self.reason}. To fix it: {self.fix}"


def _namespaces_fix(stderr: str) -> str:
    return ("enable unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1 on Debian, "
            "sysctl -w user.max_user_namespaces=15000, and on Ubuntu 24.04+ sysctl -w "
            "kernel.apparmor_restrict_unprivileged_userns=0); inside a container, start it with a seccomp "
            "profile that allows unshare/clone (docker run --security-opt seccomp=unconfined) or with "
            f"--privileged; {OFF_HINT}") if stderr else OFF_HINT


def _probe(path: str) -> SandboxStatus:
    bwrap = shutil.which("bwrap", path=path)
    if bwrap is None:
        return SandboxStatus(
            available=False,
            reason="bubblewrap (bwrap) is not installed or not on PATH",
            fix=f"install it (apt-get install bubblewrap; dnf install bubblewrap; apk add bubblewrap), {OFF_HINT}",
        )
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", *system_mounts(),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "true"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return SandboxStatus(available=False, bwrap=bwrap, reason=f"bubblewrap ({bwrap}) could not run ({e})",
                             fix=f"reinstall bubblewrap (apt-get install --reinstall bubblewrap), {OFF_HINT}")
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        detail = err[-1] if err else f"exit code {done.returncode}"
        return SandboxStatus(
            available=False, bwrap=bwrap,
            reason=f"bubblewrap ({bwrap}) cannot create namespaces here: {detail} (unprivileged user "
                   "namespaces are disabled, or a container's seccomp profile forbids them)",
            fix=_namespaces_fix(detail),
        )
    why_not = cgroups_writable()
    if why_not is None:
        return SandboxStatus(available=True, bwrap=bwrap, limits="cgroup")
    prlimit = shutil.which("prlimit", path=path)
    if prlimit is not None:
        root = os.geteuid() == 0
        note = f"per-call cgroups cannot be made ({why_not}); using prlimit --nproc/--as" + (
            " (--nproc does not bind root: the process limit is not enforced)" if root else "")
        return SandboxStatus(available=True, bwrap=bwrap, limits="prlimit", prlimit=prlimit, limits_note=note)
    return SandboxStatus(available=True, bwrap=bwrap, limits="none",
                         limits_note=f"no process or memory limits: per-call cgroups cannot be made ({why_not}) "
                                     "and prlimit (util-linux) is not installed")


@functools.lru_cache(maxsize=8)
def _cached(path: str) -> SandboxStatus:
    return _probe(path)


def sandbox_status(*, refresh: bool = False) -> SandboxStatus:
    """Whether a sandbox can be made here (cached per ``PATH``; ``refresh`` probes again)."""
    if refresh:
        _cached.cache_clear()
    return _cached(os.environ.get("PATH", os.defpath))


__all__ = ["SandboxStatus", "sandbox_status"]
