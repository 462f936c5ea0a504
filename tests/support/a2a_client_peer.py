"""A real A2A client written with a2a-sdk alone (run from the peer venv, never Troupe's):
``python a2a_client_peer.py URL [--token TOKEN] SCENARIO...``; prints one JSON report: the card, and one entry
per scenario (its error, if it raised). Scenarios, run in order in one process (one start-up for them all):

- ``stream``: sends ``hello`` streaming and records every update, gets the task, then starts a second task
  (``sleep 30``) and cancels it, then sends ``hello`` in that task's context;
- ``hello``: sends ``hello`` streaming, records the final state; ``say:WORDS``: sends WORDS, records every update;
- ``approve:PATH:ANSWER``: sends ``write PATH`` (a tool that needs approval), records the updates until the
  task is ``input-required``, answers on that task (``text:WORDS``, or ``data:true``/``data:false`` for a data
  part ``{"approve": ...}``), records the updates to the end and gets the task; ``approve+intrude:...`` first
  sends ``approve`` as a new task of the same context (it must be rejected, not taken for the answer);
- ``book:ANSWER|ANSWER...``: sends ``book`` (an MCP tool that asks a form), records the updates until the task is
  ``input-required``, then sends each answer on that task (``text:WORDS``, or ``data:JSON`` for a data part),
  recording each one's updates, and gets the task.
"""

import asyncio
import json
import sys
import traceback
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from google.protobuf.json_format import MessageToDict


def state(s):
    return TaskState.Name(s).removeprefix("TASK_STATE_").lower()


def message(*parts, task_id="", context_id=""):
    return Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=list(parts), task_id=task_id,
                   context_id=context_id)


def text(parts):
    return " ".join(p.text for p in parts if p.text)


def data(parts):
    return [MessageToDict(p)["data"] for p in parts if p.WhichOneof("content") == "data"]


def row(ev):
    """One update as a list: its kind, then what it says; and the task's (id, context id) when it names them."""
    kind = ev.WhichOneof("payload")
    if kind == "task":
        return ["task", state(ev.task.status.state)], (ev.task.id, ev.task.context_id)
    if kind == "status_update":
        u = ev.status_update
        out = ["status", state(u.status.state), text(u.status.message.parts)]
        if found := data(u.status.message.parts):
            out.append(found)
        return out, (u.task_id, u.context_id)
    if kind == "artifact_update":
        a = ev.artifact_update.artifact
        return ["artifact", a.name, text(a.parts)], (ev.artifact_update.task_id, ev.artifact_update.context_id)
    return [kind], None


async def send(client, msg):
    updates, ids = [], None
    async for ev in client.send_message(SendMessageRequest(message=msg)):
        r, found = row(ev)
        updates.append(r)
        ids = ids or found
    return updates, ids


async def stream(client):
    report = {}
    report["updates"], (task_id, _) = await send(client, message(Part(text="hello")))
    task = await client.get_task(GetTaskRequest(id=task_id))
    report["task"] = {"state": state(task.status.state), "artifacts": {a.name: text(a.parts) for a in task.artifacts}}
    second = {}

    async def slow():
        async for ev in client.send_message(SendMessageRequest(message=message(Part(text="sleep 30")))):
            if ev.WhichOneof("payload") == "task":
                second["id"], second["context"] = ev.task.id, ev.task.context_id

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
    after, _ = await send(client, message(Part(text="hello"), context_id=second["context"]))
    report["after_cancel"] = after[-1]  # the context (its session) takes the next message
    return report


async def hello(client):
    updates, _ = await send(client, message(Part(text="hello")))
    return {"last": updates[-1]}


async def say(client, words):
    updates, _ = await send(client, message(Part(text=words)))
    return {"updates": updates}


async def approve(client, path, answer, intrude=False):
    first, (task_id, context_id) = await send(client, message(Part(text=f"write {path}")))
    other = None
    if intrude:  # a new task in the context while one waits for input: not an answer
        other, _ = await send(client, message(Part(text="approve"), context_id=context_id))
    kind, _, value = answer.partition(":")
    part = Part(text=value)
    if kind == "data":
        part = Part()
        part.data.struct_value.update({"approve": value == "true", "reason": f"data says {value}"})
    second, _ = await send(client, message(part, task_id=task_id, context_id=context_id))
    task = await client.get_task(GetTaskRequest(id=task_id))
    return {"first": first, "other": other, "second": second, "state": state(task.status.state),
            "artifacts": {a.name: text(a.parts) for a in task.artifacts}}


async def book(client, answers):
    first, (task_id, context_id) = await send(client, message(Part(text="book")))
    replies = []
    for answer in answers.split("|"):
        kind, _, value = answer.partition(":")
        part = Part(text=value)
        if kind == "data":
            part = Part()
            part.data.struct_value.update(json.loads(value))
        updates, _ = await send(client, message(part, task_id=task_id, context_id=context_id))
        replies.append(updates)
    task = await client.get_task(GetTaskRequest(id=task_id))
    return {"first": first, "replies": replies, "state": state(task.status.state),
            "artifacts": {a.name: text(a.parts) for a in task.artifacts}}


async def main(url, token, scenarios):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = {}
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        report["card"] = {"name": card.name, "streaming": card.capabilities.streaming,
                          "skills": [s.id for s in card.skills], "secured": bool(card.security_requirements)}
        client = await create_client(card, ClientConfig(streaming=True, httpx_client=http))
        for scenario in scenarios:
            name, *args = scenario.split(":", 2)
            try:
                if name == "book":
                    report[scenario] = await book(client, scenario.partition(":")[2])
                elif name == "approve+intrude":
                    report[scenario] = await approve(client, *args, intrude=True)
                else:
                    report[scenario] = await {"stream": stream, "hello": hello, "say": say, "approve": approve}[name](client, *args)
            except Exception:
                report[scenario] = {"error": traceback.format_exc()}
    print(json.dumps(report))


if __name__ == "__main__":
    argv = sys.argv[1:]
    token = None
    if "--token" in argv:
        i = argv.index("--token")
        token = argv[i + 1]
        del argv[i:i + 2]
    asyncio.run(main(argv[0], token, argv[1:]))
