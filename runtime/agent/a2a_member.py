"""A team member that is a remote A2A agent (``a2a: {url: ...}`` in the team file; docs/a2a.md).

It is an :class:`~troupe.runtime.agent.core.AgentCore` in every way the team sees - a mailbox, messages,
tasks assigned to it, replies, task results, ``publish_results`` - except its turn (:func:`remote_turn`, which
the core runs when its model slot holds a :class:`~troupe.runtime.agent.a2a_remote.RemoteAgent`): instead of the model
loop it sends what it received to the remote agent (:class:`~troupe.runtime.agent.a2a_remote.RemoteAgent`)
and the remote task's answer is its reply. A remote task that fails (or is rejected or cancelled there)
fails the tasks of the turn, and a message gets the failure as its reply; the session goes on. A call
that cannot be made at all (the agent unreachable, its card unreadable) is a provider error, as a
model's would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from troupe.runtime.agent.a2a_remote import RemoteAgent
from troupe.runtime.agent.context import render_incoming
from troupe.runtime.agent.loop import Turn, TurnResult
from troupe.runtime.errors import InvalidTransitionError
from troupe.runtime.ids import TASKS
from troupe.runtime.messages import Envelope, MessageKind

if TYPE_CHECKING:
    from troupe.runtime.agent.core import AgentCore

ANSWERED = frozenset({"completed", "input_required", "auth_required"})
"""Remote states whose text is the member's reply (a question, for the last two)."""


def is_request(env: Envelope) -> bool:
    return env.kind is MessageKind.TASK or (env.kind is MessageKind.TEXT and not env.data.get("is_reply"))


def outgoing_text(batch: list[Envelope]) -> str:
    """What the remote agent is sent for a batch: one request's own words (a task's goal, with the
    request it is part of), or, for several messages, each as the model would read it."""
    requests = [e for e in batch if is_request(e)]
    if len(requests) == 1 and len(batch) == 1:
        env = requests[0]
        if env.kind is not MessageKind.TASK:
            return env.content
        prefix = f"Task {env.data.get('task_id', '')}: "
        text = env.content.removeprefix(prefix)
        task_input = env.data.get("input")
        if isinstance(task_input, dict) and task_input.get("context"):
            text += f"\n(It is part of this request: {task_input['context']})"
        return text
    return "\n\n".join(render_incoming(e).content or "" for e in batch)


async def remote_turn(core: AgentCore, remote: RemoteAgent, turn: Turn, batch: list[Envelope]) -> TurnResult:
    """A remote member's turn: send ``batch`` to its agent; the answer is the reply (or fails the turn's tasks)."""
    await turn.gate()
    if not any(is_request(e) for e in batch) and not core.open_requests:
        return TurnResult(None, 0, "waiting")  # only notices: nothing to ask the remote agent
    out = await remote.call(outgoing_text(batch), turn.emit)
    if out.state in ANSWERED:
        return TurnResult(out.text or f"[{core.id}: the remote agent answered with no text]", 1, "replied")
    error = f"the remote A2A agent {remote.model_name} ended its task {out.state}" + (f": {out.text}" if out.text else "")
    for env in [e for e in core.open_requests if e.kind is MessageKind.TASK]:
        try:
            await core.services.call(TASKS, "update", task_id=env.data["task_id"], by=str(core.id), status="failed",
                                     error=error)
        except InvalidTransitionError:
            pass  # cancelled or closed meanwhile
    core.open_requests = [e for e in core.open_requests if e.kind is not MessageKind.TASK]
    return TurnResult(f"[{error}]" if core.open_requests else None, 1, "replied")


__all__ = ["ANSWERED", "is_request", "outgoing_text", "remote_turn"]
