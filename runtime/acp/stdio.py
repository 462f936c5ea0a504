"""Stdout is the protocol: keep everything else off it.

:func:`claim_stdout` is called before anything else runs (Ray, the team's tools, a model function, a
stray ``print``): it keeps a private copy of the process's stdout for the protocol and points file
descriptor 1, and ``sys.stdout``, at stderr. Every later writer to stdout, this process's or a child's
that inherits it (Ray's workers and daemons, an MCP server, ``shell``), lands on stderr instead of in
the middle of a JSON-RPC message. Logging goes to stderr too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import BinaryIO

_protocol: BinaryIO | None = None


def claim_stdout(log_level: int = logging.WARNING) -> BinaryIO:
    """Take stdout for the protocol (once); returns the binary stream to write it to."""
    global _protocol
    if _protocol is None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)  # fd 1 (inherited by every child process) is stderr from now on
        sys.stdout = sys.stderr
        _protocol = os.fdopen(fd, "wb", buffering=0)
        logging.basicConfig(stream=sys.stderr, level=log_level, format="troupe acp: %(levelname)s %(name)s: %(message)s")
    return _protocol


async def protocol_streams(limit: int = 50 * 1024 * 1024) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams over stdin and the claimed stdout (what ``acp.run_agent`` takes)."""
    out = claim_stdout()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


__all__ = ["claim_stdout", "protocol_streams"]
