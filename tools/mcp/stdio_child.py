"""The stdio server's child process, seen from our side: its pid (by hooking the SDK's spawn helper)
and the tail of its stderr."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import Callable
from typing import Any

from troupe.runtime.redact import redact_text

STDERR_TAIL_BYTES = 4_000
"""The last bytes of the child's stderr kept for error messages."""
SPAWN_SINK: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar("troupe_mcp_spawn", default=None)
"""Where a spawned child is reported: set by the connection that is opening it, in its owner task."""


def _install_spawn_hook() -> bool:
    """Let a connection see the process ``stdio_client`` spawns (for its pid and exit code).

    The SDK keeps the process private; this wraps its module-level spawn helper and reports the
    process to the sink set in the spawning task's context (so only our connections see it).
    Without the helper (a future SDK), connections still work: pid is ``None`` and a dead server
    is noticed at the next call instead of right away.
    """
    import mcp.client.stdio as sdk_stdio

    original = getattr(sdk_stdio, "_create_platform_compatible_process", None)
    if original is None:
        return False
    if getattr(original, "_troupe_hook", False):
        return True

    async def spawn(*args: Any, **kwargs: Any) -> Any:
        process = await original(*args, **kwargs)
        sink = SPAWN_SINK.get()
        if sink is not None:
            sink(process)
        return process

    spawn._troupe_hook = True  # type: ignore[attr-defined]
    sdk_stdio._create_platform_compatible_process = spawn
    return True


SPAWN_HOOK = _install_spawn_hook()


class StderrTail:
    """The stdio child's stderr, read without a thread: the last few KB are kept for error messages
    (a server that dies usually says why there), and each line goes to the debug log."""

    def __init__(self, server: str, loop: asyncio.AbstractEventLoop) -> None:
        self._log = logging.getLogger(f"{__name__}.stderr.{server}")
        self._loop = loop
        r, w = os.pipe()
        os.set_blocking(r, False)
        self._r: int | None = r
        self.writer = os.fdopen(w, "w")
        """Handed to the child as its stderr; closed here once the child has it."""
        self._buf = bytearray()
        self._partial = b""
        loop.add_reader(r, self._drain)

    def child_started(self) -> None:
        if not self.writer.closed:
            self.writer.close()

    def _drain(self) -> None:
        while self._r is not None:
            try:
                data = os.read(self._r, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self._buf += data
            del self._buf[:-STDERR_TAIL_BYTES]
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()[-STDERR_TAIL_BYTES:]
            for line in lines:
                self._log.debug("%s", redact_text(line.decode(errors="replace")))  # a server may print its secrets

    def tail(self, max_chars: int = 1_000) -> str:
        self._drain()
        return self._buf.decode(errors="replace").strip()[-max_chars:]

    def close(self) -> None:
        self.child_started()
        if self._r is not None:
            r, self._r = self._r, None
            if not self._loop.is_closed():
                self._loop.remove_reader(r)
            os.close(r)


__all__ = ["SPAWN_HOOK", "SPAWN_SINK", "STDERR_TAIL_BYTES", "StderrTail"]
