"""A private Ray head started with ``ray start --head --block`` (for the job, dashboard and metrics tests
and ``benchmarks/job.py``; the tests' module-scoped fixture is ``tests/support/ray_head.py``).

Everything it opens is its own: free ports, a worker port range below Linux's ephemeral range, a
short temp dir (``/tmp/trj-XXXX``: Ray's socket paths must stay short). It is stopped with SIGTERM to
the ``--block`` process, which stops the node's processes (2-4 s; ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``
skips Ray's drain of up to 30 s), then every process left whose command line or working directory is
under that temp dir (workers, agents, job drivers) is terminated by pid. Never ``ray stop``: it kills
every Ray of the machine. The test process itself never calls ``ray.init`` on this head; talk to
it over HTTP (``ray job ...`` with ``--address head.dashboard_url``, ``JobSubmissionClient``) or with
the ``ray`` CLI and ``head.env()``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
WORKER_PORTS = 200


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while chosen, so the OS cannot hand one out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _worker_port_range() -> tuple[int, int]:
    """A free-looking window in 20000-32767: above Ray's default worker range, below ephemeral ports."""
    for _ in range(50):
        low = random.randrange(20000, 32768 - WORKER_PORTS)
        if all(_port_free(p) for p in range(low, low + WORKER_PORTS, 20)):
            return low, low + WORKER_PORTS - 1
    raise RuntimeError("no free worker port range")


@dataclass
class RayHead:
    temp_dir: Path
    port: int
    dashboard_port: int
    metrics_port: int
    base_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.temp_dir / "ray-start.log"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for ``ray`` CLI calls against this head (``RAY_ADDRESS`` = the dashboard)."""
        return {**self.base_env, "RAY_ADDRESS": self.dashboard_url, **extra}

    def start(self, *, num_cpus: int = 2, extra_args: list[str] | None = None) -> None:
        low, high = _worker_port_range()
        ports = {"--port": self.port, "--dashboard-port": self.dashboard_port,
                 "--metrics-export-port": self.metrics_port}
        flags = ("--ray-client-server-port", "--node-manager-port", "--object-manager-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port")
        taken = set(ports.values())
        ports.update(zip(flags, (p for p in free_ports(len(flags) + len(taken)) if p not in taken), strict=False))
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
               "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
               "--temp-dir", str(self.temp_dir), "--num-cpus", str(num_cpus), "--disable-usage-stats",
               "--min-worker-port", str(low), "--max-worker-port", str(high),
               *(f"{k}={v}" for k, v in ports.items()), *(extra_args or [])]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.base_env,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.log.read_text()}")
            if b"will now block forever" in self.log.read_bytes() and self._jobs_api_up():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not come up in {START_TIMEOUT_S:.0f} s:\n{self.log.read_text()}")

    def _jobs_api_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            return e.code == 401  # up, with token auth
        except OSError:
            return False

    def leftover_pids(self) -> list[int]:
        """Processes of this head still alive: command line or working directory under its temp dir."""
        mark = str(self.temp_dir)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
                cwd = os.readlink(entry / "cwd")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and (mark in cmd or cwd.startswith(mark)):
                found.append(int(entry.name))
        return found

    def stop(self, *, keep_temp_dir: bool = False) -> list[int]:
        """SIGTERM the ``--block`` process (Ray then stops the node's processes), its process group if
        it hangs, then any leftover under the temp dir by pid; then remove the temp dir (its logs)
        unless ``keep_temp_dir``. Returns the pids that needed SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        killed: list[int] = []
        for sig, grace_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            deadline = time.monotonic() + grace_s
            while self.leftover_pids() and time.monotonic() < deadline:
                time.sleep(0.5)
            for pid in self.leftover_pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
                if sig == signal.SIGKILL:
                    killed.append(pid)
        deadline = time.monotonic() + 5.0
        while self.leftover_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not keep_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return killed


def start_head(*, num_cpus: int = 2, auth_mode: str = "disabled", extra_args: list[str] | None = None) -> RayHead:
    """Start a private head (the caller must ``stop()`` it)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="trj-", dir="/tmp"))
    bin_dir = str(Path(sys.executable).parent)
    # No drain on SIGTERM (Ray waits up to 30 s for a draining node to go idle); the venv's bin on
    # PATH, as for a user who started the head from an activated venv, so entrypoints find `troupe`.
    env = {**os.environ, "RAY_AUTH_MODE": auth_mode, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    port, dashboard_port, metrics_port = free_ports(3)
    head = RayHead(temp_dir=temp_dir, port=port, dashboard_port=dashboard_port, metrics_port=metrics_port,
                   base_env=env)
    try:
        head.start(num_cpus=num_cpus, extra_args=extra_args)
    except BaseException:
        head.stop()
        raise
    return head

