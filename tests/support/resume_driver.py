"""A driver that starts the recovery team's session (benchmarks/support/recovery_team.py) on the Ray
cluster at ``$RAY_ADDRESS``, prints the session id, and waits for the result; the resume test stops
the whole cluster under it.

    python -m tests.support.resume_driver LAKE LEDGER TAG
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from benchmarks.support.recovery_team import recovery_team, request_text
from troupe.runtime.api import Troupe


async def main(lake: str, ledger: str, tag: str) -> None:
    troupe = await Troupe.connect(lake=lake)
    session = await troupe.open(recovery_team(), subscribe=False)
    await session.send(request_text(Path(ledger), tag))
    print(session.id, flush=True)
    await session.result()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
