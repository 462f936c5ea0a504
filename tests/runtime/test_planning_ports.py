"""The planner's step dispatcher against a task registry in another actor (the dedicated placement, modelled
without Ray): one ``wait_any`` call per poll, and no wait left behind on the registry once a poll returns."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from troupe.runtime.ids import SessionId
from troupe.runtime.planning.ports import TaskSteps
from troupe.runtime.session.tasks import TaskRegistry


class RemoteTasks:
    """The task registry as a planner in another actor reaches it: each call runs on the registry's side, and
    cancelling the caller's await does not stop it there (as with an awaited Ray actor call)."""

    def __init__(self, registry: TaskRegistry) -> None:
        self.registry = registry
        self.calls: list[str] = []

    async def call(self, target: Any, method: str, /, **kwargs: Any) -> Any:
        self.calls.append(method)
        result = getattr(self.registry, method)(**kwargs)
        return await asyncio.shield(asyncio.ensure_future(result)) if inspect.isawaitable(result) else result


def steps_over(registry: TaskRegistry) -> tuple[TaskSteps, RemoteTasks]:
    remote = RemoteTasks(registry)
    ctx = SimpleNamespace(services=remote, agent="planner", task_id=None, taint=None, forget_notices=lambda ids: None)
    return TaskSteps(ctx), remote  # type: ignore[arg-type]


async def test_a_poll_is_one_wait_and_leaves_none_behind_on_the_registry() -> None:
    registry = TaskRegistry(SessionId("s-1"))
    ids = [str(registry.create(f"step {n}", created_by="planner", assignee=f"w{n}").id) for n in range(3)]
    steps, remote = steps_over(registry)
    poll = asyncio.ensure_future(steps.wait_any(ids, timeout=30.0))
    await asyncio.sleep(0.01)
    assert registry.pending_waits() == 1  # one wait for the three running steps
    registry.update(ids[1], by="w1", status="running")
    registry.update(ids[1], by="w1", status="done", output="two")
    outcomes = await asyncio.wait_for(poll, 2)
    assert [(o.task_id, o.status, o.output) for o in outcomes] == [(ids[1], "done", "two")]
    await asyncio.sleep(0.01)
    assert registry.pending_waits() == 0  # nothing waits on until the step timeout for the other two
    assert remote.calls == ["wait_any"]
    # a poll that finds a step already finished answers at once; one that runs out its time answers empty
    assert [o.task_id for o in await steps.wait_any(ids, timeout=30.0)] == [ids[1]]
    assert await steps.wait_any([ids[0], ids[2]], timeout=0.05) == []
    assert registry.pending_waits() == 0 and remote.calls == ["wait_any"] * 3


async def test_the_registry_wait_any_validates_and_keeps_wait() -> None:
    registry = TaskRegistry(SessionId("s-1"))
    a = str(registry.create("a", created_by="x").id)
    with pytest.raises(Exception, match="no-such"):
        await registry.wait_any([a, "no-such"], timeout=0.1)
    with pytest.raises(TimeoutError, match="still open"):
        await registry.wait([a], timeout=0.01)
    assert registry.pending_waits() == 0
