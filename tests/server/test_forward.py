"""The forwarding core without Ray: operations reach their session's holder and its answers come back as
they are; nothing waits forever (a holder that does not answer: 504; one that stopped or died: 409 at once)."""

from __future__ import annotations

import asyncio
import time

from troupe.runtime.server.forward import ForwardedOp, ForwardQueue, HolderLoop, OpOutcome, refusal
from troupe.runtime.server.state import LocalDirectory


def _op(sid: str = "s1", name: str = "send", sender: str = "b", **args: object) -> ForwardedOp:
    return ForwardedOp(session_id=sid, op=name, args=dict(args), user="ann", sender=sender)


async def test_an_operation_reaches_its_holder_and_its_answer_comes_back() -> None:
    directory = LocalDirectory()
    seen: list[ForwardedOp] = []

    async def execute(op: ForwardedOp) -> OpOutcome:
        seen.append(op)
        if op.op == "refuse":
            return refusal(404, "approval x is not pending", "it was decided already", "a")
        if op.op == "boom":
            raise RuntimeError("the session's actor died")
        return OpOutcome(status=200, body={"session_id": op.session_id, "echo": op.args}, holder="a")

    loop = HolderLoop(directory, "a", execute, wait_s=0.2)
    loop.start()
    await directory.hold("a", "s1")
    ok, refused, failed = await asyncio.gather(directory.submit(_op(input="hi"), 5),
                                               directory.submit(_op(name="refuse"), 5),
                                               directory.submit(_op(name="boom"), 5))
    assert ok == OpOutcome(status=200, body={"session_id": "s1", "echo": {"input": "hi"}}, holder="a")
    assert (refused.status, refused.body["error"]) == (404, "approval x is not pending")
    assert failed.status == 500 and failed.body["reason"] == "the session's actor died" and failed.holder == "a"
    assert {op.user for op in seen} == {"ann"}
    stats = await directory.forward_stats()
    assert (stats.forwarded, stats.answered, stats.holders) == (3, 3, {"a": 1})
    await loop.stop()
    assert (await directory.forward_stats()).holders == {}


async def test_a_session_no_live_holder_holds_is_not_sent() -> None:
    queue = ForwardQueue()
    out = await queue.submit(_op(), 5)
    assert (out.sent, out.status) == (False, 409)
    queue.hold("a", "s1")
    queue.release("a", "s1")
    assert (await queue.submit(_op(), 5)).sent is False
    queue.hold("b", "s1")  # held by the sender itself: never forwarded to itself
    assert (await queue.submit(_op(sender="b"), 5)).sent is False


async def test_a_holder_that_does_not_answer_times_out_and_the_operation_is_not_run_later() -> None:
    queue = ForwardQueue()
    queue.hold("a", "s1")  # registered, but it does not poll (yet)
    started = time.monotonic()
    out = await queue.submit(_op(), 0.2)
    assert out.status == 504 and "did not answer in 0.2 s" in out.body["error"] and out.holder == "a"
    assert "resume" in out.body["reason"]
    assert time.monotonic() - started < 1.5
    assert await queue.poll("a", 0.01) == []  # the sender gave up: it is not delivered
    assert queue.snapshot().timed_out == 1


async def test_an_operation_delivered_but_never_answered_times_out() -> None:
    queue = ForwardQueue()
    queue.hold("a", "s1")
    waiting = asyncio.create_task(queue.submit(_op(), 0.3))
    [delivered] = await queue.poll("a", 1)
    out = await waiting
    assert out.status == 504
    assert queue.complete(delivered.id, OpOutcome(status=200)) is False  # too late: nobody waits


async def test_a_holder_that_stops_fails_what_waits_on_it_at_once() -> None:
    queue = ForwardQueue()
    queue.hold("a", "s1")
    waiting = asyncio.create_task(queue.submit(_op(), 30))
    await queue.poll("a", 1)
    started = time.monotonic()
    queue.unregister("a")
    out = await waiting
    assert out.status == 409 and "no longer held by a live server process" in out.body["error"]
    assert "POST /api/v1/sessions/s1/resume" in out.body["reason"]
    assert time.monotonic() - started < 1
    assert (await queue.submit(_op(), 30)).sent is False  # and later ones are not sent


async def test_a_holder_that_vanished_without_unregistering_fails_fast() -> None:
    queue = ForwardQueue(lease_s=0.3, check_s=0.05)
    queue.hold("a", "s1")
    started = time.monotonic()
    out = await queue.submit(_op(), 30)  # "a" never polls again: its lease ends
    assert out.status == 409 and out.holder == "a" and "stopped" in out.body["reason"]
    assert time.monotonic() - started < 2
    assert queue.holder_of("s1") is None
    assert queue.snapshot().gone == 1
    assert (await queue.submit(_op(), 30)).sent is False  # nothing is sent to it
    await queue.poll("a", 0.01)  # it was paused, not dead: it holds its sessions again
    assert queue.holder_of("s1") == "a"


async def test_a_polling_holder_stays_alive_past_its_lease() -> None:
    queue = ForwardQueue(lease_s=0.2, check_s=0.05)

    async def execute(op: ForwardedOp) -> OpOutcome:
        await asyncio.sleep(0.5)  # longer than the lease: the loop keeps polling meanwhile
        return OpOutcome(status=200, body="done", holder="a")

    channel = LocalDirectory(queue)
    loop = HolderLoop(channel, "a", execute, wait_s=0.05)
    loop.start()
    queue.hold("a", "s1")
    assert (await queue.submit(_op(), 5)).body == "done"
    await loop.stop()
