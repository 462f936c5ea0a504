"""Child-process entrypoint: serve one GGUF model over llama.cpp's OpenAI-compatible HTTP server.

    python -m troupe.runtime.llm.local.serve --model PATH --port P --threads N --parallel K --ctx-size C

Binds ``127.0.0.1:P`` (``--port 0``: the OS picks a free port), loads the model, then writes the
listening address to ``--ready-file`` (atomically) and blocks until SIGTERM/SIGINT, or until its
parent process is gone, and stops the server cleanly. :class:`~troupe.runtime.llm.local.server.LocalServer`
runs this with its output going to a log file; nothing here is meant for a terminal.

Exit codes: 0 clean stop, :data:`EXIT_PORT_IN_USE` the port could not be bound,
:data:`EXIT_START_FAILED` the server did not start (see the log), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

EXIT_PORT_IN_USE = 98
EXIT_START_FAILED = 3
BIND_ERROR_TEXT = "couldn't bind HTTP server socket"
"""What llama.cpp logs when the port is taken (the parent also looks for it in the log)."""
CACHE_RAM_MIB = 1024
"""Host-memory prompt cache (llama.cpp's default is 8 GiB: too much beside a Ray node)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m troupe.runtime.llm.local.serve", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="path of the GGUF file")
    ap.add_argument("--port", type=int, default=0, help="loopback port; 0 lets the OS pick a free one")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--parallel", type=int, default=2, help="concurrent request slots")
    ap.add_argument("--ctx-size", type=int, default=4096, help="context tokens per slot")
    ap.add_argument("--alias", default="", help="model name reported by /v1/models")
    ap.add_argument("--ready-file", default="", help="where to write {'address', 'pid'} once serving")
    ap.add_argument("--parent-pid", type=int, default=0, help="stop when this process is gone")
    return ap.parse_args(argv)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def build_params(args: argparse.Namespace):  # -> xlc.CommonParams
    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = args.model
    p.hostnames = ["127.0.0.1"]
    p.port = args.port
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx_size * args.parallel  # llama.cpp splits n_ctx across the slots
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.ui = False
    # Loopback only, and no browser page from another origin may drive it (fields of newer
    # xllamacpp releases: skipped where absent).
    for field, value in (("cors_origins", "http://127.0.0.1"), ("cors_origins_explicit", True)):
        if hasattr(p, field):
            setattr(p, field, value)
    p.cache_ram_mib = CACHE_RAM_MIB
    if args.alias:
        p.model_alias = {args.alias}
    return p


def _write_ready(path: str, address: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps({"address": address, "pid": os.getpid()}))
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        got.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.port and not port_free(args.port):
        print(f"troupe-serve: {BIND_ERROR_TEXT}: 127.0.0.1:{args.port} is in use", file=sys.stderr, flush=True)
        return EXIT_PORT_IN_USE

    import xllamacpp as xlc

    started = time.monotonic()
    try:
        server = xlc.Server(build_params(args))
    except RuntimeError as e:
        print(f"troupe-serve: the server did not start: {e}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    address = server.listening_address
    print(f"troupe-serve: serving {args.model} at {address} (pid {os.getpid()}, "
          f"loaded in {time.monotonic() - started:.2f}s)", file=sys.stderr, flush=True)
    if args.ready_file:
        _write_ready(args.ready_file, address)

    # A second guard beside PR_SET_PDEATHSIG (Linux only): stop when the parent is gone.
    while not stop.wait(1.0):
        if args.parent_pid and os.getppid() != args.parent_pid:
            print("troupe-serve: parent process is gone; stopping", file=sys.stderr, flush=True)
            break
    print(f"troupe-serve: stopping ({signal.Signals(got[0]).name if got else 'parent gone'})",
          file=sys.stderr, flush=True)
    del server  # the C++ destructor stops the HTTP server and frees the model
    print("troupe-serve: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
