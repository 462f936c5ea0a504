"""Live progress across Ray hops: a call that reports progress while it runs, as a streaming generator.

An MCP call on Ray goes from the agent's host to the scheduler actor, and from there to the node's MCP
actor. Each hop is a streaming actor task (``num_returns="streaming"``) that yields ``("progress", note)``
for each notification as the server sends it, then ``("result", value)``; :func:`relay` makes such a
stream of a coroutine that takes an ``on_progress`` callback, and :func:`read_stream` turns a stream back
into a value, handing the progress to a callback on the way. A failure is raised where the stream is
read (our own errors unwrapped); cancelling the reader cancels the stream, and with it the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ray
from ray.exceptions import RayTaskError

from troupe.actors.transport import unwrap

PROGRESS = "progress"
RESULT = "result"


async def relay(start: Callable[[Callable[[Any], None]], Awaitable[Any]]) -> AsyncIterator[tuple[str, Any]]:
    """Run ``start(on_progress)``; yield ``(PROGRESS, note)`` for each note it reports, as it reports it,
    then ``(RESULT, value)``. Its failure is raised here; closing the generator cancels it."""
    notes: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.ensure_future(start(notes.put_nowait))
    try:
        while not task.done() or not notes.empty():
            if notes.empty():
                waiter = asyncio.ensure_future(notes.get())
                await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    continue
                yield PROGRESS, waiter.result()
            else:
                yield PROGRESS, notes.get_nowait()
        yield RESULT, task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def read_stream(stream: Any, on_progress: Callable[[Any], None] | None) -> Any:
    """The value at the end of a :func:`relay` stream (an ``ObjectRefGenerator``), handing each progress note
    to ``on_progress`` as it arrives."""
    value: Any = None
    try:
        async for ref in stream:
            kind, item = await ref
            if kind == RESULT:
                value = item
            elif on_progress is not None:
                on_progress(item)
    except asyncio.CancelledError:
        ray.cancel(stream, recursive=False)  # a timeout or a cancelled turn: stop the call (each hop cancels its own)
        raise
    except RayTaskError as e:
        raise unwrap(e) from None
    return value


__all__ = ["PROGRESS", "RESULT", "read_stream", "relay"]
