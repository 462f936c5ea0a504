"""Run the local model server as a child process and know when it is ready.

:class:`LocalServer` resolves the model (:func:`~troupe.runtime.llm.local.weights.ensure_model`), starts
:mod:`troupe.runtime.llm.local.serve` (``python -P .../serve.py``) on a loopback port with its output in a log file under
``<cache>/logs/`` (never the terminal), waits until ``GET /v1/models`` answers, and stops it by
pid. On Linux the child gets ``PR_SET_PDEATHSIG=SIGTERM``, so it dies with its parent even when the
parent is SIGKILLed (a crashed Ray actor takes its server down); the child also watches its parent.

Ports: by default the OS picks a free one at bind time (``--port 0``), so two servers never race
for a port; a bind failure is retried with a fresh port. An explicitly requested port that is taken
is a :class:`~troupe.runtime.errors.ConfigError` naming it.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.local import serve as _serve
from troupe.runtime.llm.local.weights import cache_dir, ensure_model, short_name

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 2
MAX_PARALLEL = 16
DEFAULT_CTX_SIZE = 4096
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 25
KEEP_LOGS = 20
"""Server logs kept per log folder (the oldest are removed when a server starts)."""


def available_cores() -> int:
    """Cores this process may run on (the affinity view, not the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """All cores but one (at least one).

    llama.cpp's threads meet at a barrier for every layer, so one descheduled thread stalls them
    all: on a 2-core node shared with Ray, 2 threads measured 2-9 tokens/s against 25-35 with 1.
    Leaving a core to Ray and the agents keeps decoding fast; pass ``threads=`` (or set
    ``TROUPE_LOCAL_THREADS``) on a machine that runs nothing else.
    """
    cores = available_cores()
    return cores - 1 if cores > 1 else 1


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once here: after fork() the child should do as little as possible (no dlopen).
_PRCTL = _load_prctl()


def _set_pdeathsig() -> None:
    """In the child before exec: SIGTERM me when my parent dies (Linux only; best effort)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``Popen`` from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process; starting
    servers from short-lived threads (``asyncio.to_thread`` pools) would kill them early. One
    spawner thread that lives as long as the process keeps the signal tied to the process.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="troupe-local-spawn")
    spawn: Any = functools.partial(subprocess.Popen, cmd, **kwargs)
    return _spawner.submit(spawn).result()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LocalServer:
    """One llama.cpp server process for one model, reachable at :attr:`base_url`.

    ``threads`` defaults to the cores available less one (see :func:`default_threads`), ``parallel`` (concurrent request slots, 1..16)
    to 2, ``ctx_size`` to 4096 tokens per slot. ``port=None`` lets the OS choose. ``start()`` is
    blocking (model assembly on first use, then ~2 s to load the 0.5B model); ``stop()`` is
    idempotent, also runs at interpreter exit, and the object is a context manager.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        threads: int | None = None,
        parallel: int = DEFAULT_PARALLEL,
        ctx_size: int = DEFAULT_CTX_SIZE,
        start_timeout_s: float = START_TIMEOUT_S,
        log_dir: Path | None = None,
    ) -> None:
        if not 1 <= int(parallel) <= MAX_PARALLEL:
            raise ConfigError(f"local model server: parallel must be 1..{MAX_PARALLEL} slots, got {parallel}")
        if int(ctx_size) < 256:
            raise ConfigError(f"local model server: ctx_size must be at least 256 tokens, got {ctx_size}")
        if port is not None and not 0 < int(port) < 65536:
            raise ConfigError(f"local model server: port must be 1..65535, got {port}")
        self.model = model
        self.name = short_name(model)
        self.port = port
        self.threads = max(1, int(threads)) if threads else default_threads()
        self.parallel = int(parallel)
        self.ctx_size = int(ctx_size)
        self.start_timeout_s = start_timeout_s
        self.log_dir = log_dir or cache_dir() / "logs"
        self.model_path: Path | None = None
        self.base_url: str | None = None
        """``http://127.0.0.1:PORT`` once started (the OpenAI API is under ``/v1``)."""
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        _LIVE.add(self)

    # --- state -------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for an OpenAI client (``.../v1``)."""
        if self.base_url is None:
            raise RuntimeError("the local model server is not started")
        return self.base_url + "/v1"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer({self.name!r}, base_url={self.base_url!r}, pid={self.pid})"

    # --- start -------------------------------------------------------------------------------
    def start(self) -> LocalServer:
        """Start the server (no-op if running); raises :class:`ConfigError` with the log tail."""
        with self._lock:
            if self.running() and self.base_url is not None:
                return self
            self._reap()
            self.model_path = ensure_model(self.model)
            if self.port is not None and not _serve.port_free(self.port):
                raise ConfigError(self._port_taken_message(self.port), port=self.port)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            last: ConfigError | None = None
            for attempt in range(_START_ATTEMPTS):
                try:
                    self._launch_and_wait()
                    return self
                except _PortClash as clash:
                    if self.port is not None:
                        raise ConfigError(self._port_taken_message(self.port), port=self.port) from None
                    last = ConfigError(str(clash))
                    log.info("local model server: port clash (attempt %d), retrying on a new port", attempt + 1)
            assert last is not None
            raise last

    def _port_taken_message(self, port: int) -> str:
        return (
            f"local model server: port {port} on 127.0.0.1 is already in use; choose another port, or "
            "leave the port unset so a free one is picked"
        )

    def _prune_logs(self) -> None:
        with contextlib.suppress(OSError):
            logs = sorted(self.log_dir.glob("local-*.log"), key=lambda p: p.stat().st_mtime)
            for old in logs[:-KEEP_LOGS]:
                with contextlib.suppress(OSError):
                    old.unlink()

    def _launch_and_wait(self) -> None:
        self._prune_logs()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = self.log_dir / f"local-{self.name}-{stamp}-{os.getpid()}-{id(self) & 0xFFFF:04x}.log"
        ready = self.log_path.with_suffix(".ready")
        ready.unlink(missing_ok=True)
        # serve.py needs only the stdlib and xllamacpp: run it as a file (``-P``: without its folder
        # on sys.path) rather than ``-m runtime...``, which would import the openai stack (~1 s).
        cmd = [
            sys.executable, "-P", str(Path(_serve.__file__).resolve()),
            "--model", str(self.model_path),
            "--port", str(self.port or 0),
            "--threads", str(self.threads),
            "--parallel", str(self.parallel),
            "--ctx-size", str(self.ctx_size),
            "--alias", self.name,
            "--ready-file", str(ready),
            "--parent-pid", str(os.getpid()),
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as logf:
            self._proc = _spawn(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                close_fds=True,
                preexec_fn=_set_pdeathsig if _PRCTL is not None else None,
            )
        log.info("local model server %s starting: pid %d, log %s", self.name, self._proc.pid, self.log_path)
        try:
            self.base_url = self._wait_ready(ready, started)
        except BaseException:
            self._kill()
            raise
        finally:
            ready.unlink(missing_ok=True)
        log.info("local model server %s ready at %s in %.2fs", self.name, self.base_url, time.monotonic() - started)

    def _wait_ready(self, ready: Path, started: float) -> str:
        assert self._proc is not None and self.log_path is not None
        deadline = started + self.start_timeout_s
        address: str | None = None
        delay = 0.05
        while True:
            code = self._proc.poll()
            if code is not None:
                text = tail(self.log_path)
                if code == _serve.EXIT_PORT_IN_USE or _serve.BIND_ERROR_TEXT in text:
                    raise _PortClash(f"local model server could not bind its port; log {self.log_path}")
                raise ConfigError(
                    f"the local model server exited with code {code} before it was ready; log: {self.log_path}\n"
                    f"--- last lines ---\n{text}",
                    log=str(self.log_path),
                    exit_code=code,
                )
            if address is None and ready.exists():
                with contextlib.suppress(OSError, ValueError):
                    address = json.loads(ready.read_text())["address"].rstrip("/")
            if address is not None and _answers(address + "/v1/models"):
                return address
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the local model server did not answer within {self.start_timeout_s:g}s; log: "
                    f"{self.log_path}\n--- last lines ---\n{tail(self.log_path)}",
                    log=str(self.log_path),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    # --- stop --------------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait, then SIGKILL; safe to call any number of times."""
        with self._lock:
            self._kill(timeout)
            self.base_url = None

    def _kill(self, timeout: float = STOP_TIMEOUT_S) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("local model server pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        self._proc = None

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
            self.base_url = None

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name, "model_path": str(self.model_path) if self.model_path else None,
            "base_url": self.base_url, "pid": self.pid, "log_path": str(self.log_path) if self.log_path else None,
            "threads": self.threads, "parallel": self.parallel, "ctx_size": self.ctx_size,
        }


class _PortClash(Exception):
    pass


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    """``GET url`` answers 2xx (directly: a loopback URL must never go through an HTTP proxy)."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=2.0) as r:
            return bool(200 <= r.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


_LIVE: weakref.WeakSet[LocalServer] = weakref.WeakSet()


def stop_all() -> None:
    """Stop every :class:`LocalServer` of this process (runs at exit)."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


atexit.register(stop_all)

__all__ = [
    "DEFAULT_CTX_SIZE",
    "DEFAULT_PARALLEL",
    "MAX_PARALLEL",
    "LocalServer",
    "available_cores",
    "default_threads",
    "stop_all",
]
