"""A real A2A client written with a2a-sdk alone (run from the peer venv, never Troupe's):
``python a2a_client_peer.py URL [TOKEN]``. It reads the agent card, sends ``hello`` streaming and records
every update, gets the task, then starts a second task (``sleep``) and cancels it; prints one JSON report."""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState


def state(s):
    return TaskState.Name(s).removeprefix("TASK_STATE_").lower()


def message(text):
    return Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])


async def main(url, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = {}
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        report["card"] = {"name": card.name, "streaming": card.capabilities.streaming,
                          "skills": [s.id for s in card.skills], "secured": bool(card.security_requirements)}
        client = await create_client(card, ClientConfig(streaming=True, httpx_client=http))
        updates, task_id = [], None
        async for ev in client.send_message(SendMessageRequest(message=message("hello"))):
            kind = ev.WhichOneof("payload")
            if kind == "task":
                task_id = ev.task.id
                updates.append(["task", state(ev.task.status.state)])
            elif kind == "status_update":
                msg = " ".join(p.text for p in ev.status_update.status.message.parts)
                updates.append(["status", state(ev.status_update.status.state), msg])
            elif kind == "artifact_update":
                a = ev.artifact_update.artifact
                updates.append(["artifact", a.name, " ".join(p.text for p in a.parts)])
        report["updates"] = updates
        task = await client.get_task(GetTaskRequest(id=task_id))
        report["task"] = {"state": state(task.status.state), "artifacts": {a.name: " ".join(p.text for p in a.parts)
                                                                            for a in task.artifacts}}
        second = {}

        async def slow():
            async for ev in client.send_message(SendMessageRequest(message=message("sleep 30"))):
                if ev.WhichOneof("payload") == "task":
                    second["id"] = ev.task.id

        runner = asyncio.create_task(slow())
        for _ in range(200):
            if "id" in second:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        cancelled = await client.cancel_task(CancelTaskRequest(id=second["id"]))
        report["cancel"] = state(cancelled.status.state)
        runner.cancel()
        try:
            await runner
        except BaseException:
            pass
        again = await client.get_task(GetTaskRequest(id=second["id"]))
        report["cancelled_task"] = state(again.status.state)
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
