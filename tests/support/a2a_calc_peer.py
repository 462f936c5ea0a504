"""A tiny A2A agent server written with a2a-sdk alone (run from the peer venv, never Troupe's):
``python a2a_calc_peer.py PORT``. It adds the integers in a message (``add 2 and 3`` -> ``5``), as an
artifact ``sum`` and the completed status message; ``fail`` in the message fails the task."""

import re
import sys

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
from starlette.applications import Starlette


class Calc(AgentExecutor):
    async def execute(self, context, event_queue):
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = get_message_text(context.message)
        await updater.start_work(updater.new_agent_message([Part(text="adding")]))
        if "fail" in text:
            await updater.failed(updater.new_agent_message([Part(text="cannot add that")]))
            return
        total = sum(int(n) for n in re.findall(r"-?\d+", text.split("(It is part")[0]))
        await updater.add_artifact([Part(text=str(total))], name="sum")
        await updater.complete(updater.new_agent_message([Part(text=f"the sum is {total}")]))

    async def cancel(self, context, event_queue):
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def main() -> None:
    port = int(sys.argv[1])
    card = AgentCard(
        name="calc", description="adds integers", version="1.0",
        supported_interfaces=[AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC",
                                             protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="add", name="add", description="adds the integers in a message", tags=["math"])])
    handler = DefaultRequestHandler(agent_executor=Calc(), task_store=InMemoryTaskStore(), agent_card=card)
    app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
