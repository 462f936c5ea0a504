"""Starting the MCP server: stdio (the default) or streamable HTTP, logs, signals, clean exit.

stdio: the process's stdout carries only protocol. While serving, the MCP SDK points fd 1 at
stderr and fd 0 at the null device and writes the protocol through private duplicates; the runtime
(Ray included) starts inside that window, so Ray's processes inherit stderr, never the wire. Logs
go to stderr. The server stops when the client closes stdin, or on SIGTERM / SIGINT: it closes
every open session (their events reach the lake) and stops the runtime it started (``ray.init``
started here is shut down; a cluster it joined is left running).

HTTP: ``http://HOST:PORT/mcp`` (streamable HTTP), on 127.0.0.1 by default with the SDK's DNS
rebinding protection (a request whose Host or Origin is not a loopback name is refused with 421/403)
and resumable SSE streams (:mod:`troupe.runtime.mcp_server.event_store`: a priming event with an id
and a ``retry`` field, and ``Last-Event-ID`` replay). With API keys in the store (``troupe keys
create``) every request needs one (role user or above) and acts as the key's user, who owns the sessions
it opens and touches no other user's (:mod:`troupe.runtime.mcp_server.owners`); without any, it listens on
loopback only (:mod:`troupe.runtime.mcp_server.access`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from troupe.runtime.mcp_server.core import ServiceOptions, TroupeService
from troupe.runtime.mcp_server.event_store import RETRY_MS, MemoryEventStore
from troupe.runtime.mcp_server.tools import build_server

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from troupe.runtime.access import DenialLog

log = logging.getLogger("troupe.mcp")

HTTP_PATH = "/mcp"
GRACEFUL_SHUTDOWN_S = 5
"""How long HTTP shutdown waits for open client streams before closing them."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
STOP_TIMEOUT_S = 60.0
"""stdio: the longest a signal waits for sessions and the runtime to close before the process exits."""


def configure_logging(level: str = "WARNING") -> None:
    """Everything to stderr (stdout is the protocol in stdio mode)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def check_port_free(host: str, port: int) -> None:
    """Fail before starting the runtime when the port is taken (uvicorn would exit mid-startup)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            hint = "pick another port with --http PORT"
            raise OSError(f"cannot listen on {host}:{port} ({e.strerror}); {hint}") from None


def _on_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """A hook for after the runtime started (``ray.init`` installs its own SIGTERM handler, so
    ours goes in after it) that routes SIGTERM and SIGINT to ``callback``."""
    def install() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, callback)
    return install


async def _exit_when_stopped(service: TroupeService) -> None:
    """stdio on a signal: once every session is closed, exit. (The SDK reads stdin in a worker
    thread that only returns at end of input, which a signal does not bring.)"""
    try:
        await asyncio.wait_for(service.stopped.wait(), STOP_TIMEOUT_S)
        code = 0
    except TimeoutError:
        log.error("the runtime did not stop within %ss; exiting anyway", STOP_TIMEOUT_S)
        code = 1
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


async def serve_stdio(options: ServiceOptions) -> None:
    service = TroupeService(options)
    main = asyncio.current_task()
    assert main is not None
    exits: list[asyncio.Task[None]] = []

    def stop() -> None:
        log.info("signal received: closing sessions and stopping")
        if not exits:
            exits.append(asyncio.get_running_loop().create_task(_exit_when_stopped(service)))
            main.cancel()

    server = build_server(service, on_started=_on_signals(stop))
    try:
        await server.run_stdio_async()
    except asyncio.CancelledError:
        if main.cancelling() == 0:
            raise
        # our own signal handler cancelled us; the lifespan has closed everything


def http_app(service: TroupeService, *, host: str, on_started: Callable[[], None] | None = None,
             keys_path: str | Path | None = None) -> tuple[ASGIApp, DenialLog]:
    """The streamable-HTTP ASGI app of ``service`` at :data:`HTTP_PATH`, behind the API keys of ``keys_path``
    (default ``$TROUPE_HOME/keys.json``), and the log its refusals are recorded in (in the service's lake)."""
    from troupe.runtime.mcp_server.access import protect

    server = build_server(service, on_started=on_started)
    mcp_app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host, event_store=MemoryEventStore(),
                                         retry_interval=RETRY_MS)  # resumable SSE streams
    return protect(mcp_app, host=host, lake=service.options.lake, keys_path=keys_path)


async def serve_http(options: ServiceOptions, *, host: str, port: int) -> None:
    import uvicorn

    from troupe.runtime.access import KeyStore, check_bind

    check_bind(host, KeyStore(), what="troupe mcp serve --http")  # before anything listens, even for a moment
    check_port_free(host, port)
    service = TroupeService(options)
    holder: list[uvicorn.Server] = []

    def stop() -> None:
        log.info("signal received: closing sessions and stopping")
        holder[0].should_exit = True

    app, denials = http_app(service, host=host, on_started=_on_signals(stop))  # API keys; refuses non-loopback without one
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on")
    uv = uvicorn.Server(config)
    holder.append(uv)
    shown = f"[{host}]" if ":" in host else host
    print(f"troupe MCP server: http://{shown}:{port}{HTTP_PATH} (streamable HTTP; starting the runtime)",
          file=sys.stderr, flush=True)
    try:
        await uv.serve()
    finally:
        denials.close()
    if getattr(uv, "started", True) is False:
        raise OSError(f"the HTTP server on {host}:{port} did not start (see the log above)")


def run(options: ServiceOptions, *, http_port: int | None = None, host: str = "127.0.0.1") -> int:
    """Serve until the client goes away or a signal comes; returns the exit status."""
    if http_port is None:
        asyncio.run(serve_stdio(options))
    else:
        asyncio.run(serve_http(options, host=host, port=http_port))
    return 0


__all__ = ["HTTP_PATH", "check_port_free", "configure_logging", "http_app", "run", "serve_http", "serve_stdio"]
