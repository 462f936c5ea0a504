"""The Python process inside a cpu tool's sandbox: ``python -I -m troupe.tools.sandbox.child``.

It reads ``(target, kwargs)`` pickled with cloudpickle from stdin, runs the tool's function (or
class instance), and writes ``("ok", value)`` or ``("error", exception)`` pickled to the stdout it
started with; the function's own prints go to stderr, so they cannot corrupt the answer.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import cloudpickle


def _answer(outcome: tuple[str, Any]) -> bytes:
    try:
        return cloudpickle.dumps(outcome)
    except Exception as e:  # an unpicklable value or exception: say what it was
        kind = "value" if outcome[0] == "ok" else "exception"
        return cloudpickle.dumps(("error", RuntimeError(f"the tool's {kind} could not be sent back from its "
                                                        f"sandbox ({type(e).__name__}: {e}): {outcome[1]!r:.500}")))


def main() -> None:
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # print() in the tool goes to stderr
    sys.stdout = sys.stderr
    try:
        target, kwargs = cloudpickle.loads(sys.stdin.buffer.read())
        from troupe.tools.spec import _callable_of

        value = _callable_of(target)(**kwargs)
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
        outcome: tuple[str, Any] = ("ok", value)
    except BaseException as e:  # noqa: BLE001  (everything goes back to the caller, as it was raised)
        outcome = ("error", e)
    with os.fdopen(answer_fd, "wb") as out:
        out.write(_answer(outcome))


if __name__ == "__main__":
    main()
