"""An ACP client (the ``agent-client-protocol`` SDK, from its own venv) driving ``troupe acp``.

``python acp_client.py ANSWER CWD PROMPT [PROMPT...] -- COMMAND ARGS...``: spawns the agent with
``spawn_agent_process``, initializes, opens a session in CWD, sends each PROMPT in turn, answers permission
requests with ANSWER (``allow``, ``reject`` or ``cancel``); a prompt written ``cancel:TEXT`` is sent and then
cancelled (``session/cancel``) once its first tool call completed. Prints one JSON object: the initialize
response, each prompt's response, every update and every permission request, in order.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import acp
from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Client:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.log: list[dict[str, Any]] = []
        self.tool_done = asyncio.Event()

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.log.append({"update": _dump(update)})
        if update.session_update == "tool_call_update" and update.status == "completed":
            self.tool_done.set()

    async def request_permission(self, session_id: str, tool_call: Any, options: list[Any],
                                 **kwargs: Any) -> RequestPermissionResponse:
        self.log.append({"permission": _dump(tool_call), "options": [_dump(o) for o in options]})
        if self.answer == "cancel":
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=self.answer))

    def on_connect(self, conn: Any) -> None:
        pass


async def main(argv: list[str]) -> dict[str, Any]:
    split = argv.index("--")
    answer, cwd, prompts = argv[0], argv[1], argv[2:split]
    command = argv[split + 1:]
    client = Client(answer)
    out: dict[str, Any] = {"prompts": []}
    async with acp.spawn_agent_process(client, *command) as (conn, _process):
        out["initialize"] = _dump(await conn.initialize(protocol_version=acp.PROTOCOL_VERSION))
        session = await conn.new_session(cwd=cwd, mcp_servers=[])
        out["session_id"] = session.session_id
        for text in prompts:
            cancel = text.startswith("cancel:")
            text = text.removeprefix("cancel:")
            client.tool_done.clear()
            turn = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[acp.text_block(text)]))
            if cancel:
                await asyncio.wait_for(client.tool_done.wait(), 30)
                client.log.append({"cancel": text})
                await conn.cancel(session_id=session.session_id)
            response = await asyncio.wait_for(turn, 60)
            client.log.append({"response": _dump(response)})
            out["prompts"].append(_dump(response))
    out["log"] = client.log
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
