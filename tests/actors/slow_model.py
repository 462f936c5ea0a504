"""A function model that takes a long time (for the SIGTERM test)."""

import asyncio


async def reply(request, agent):  # noqa: ANN001, ANN201 - the function-model signature
    await asyncio.sleep(120)
    return "too late"
