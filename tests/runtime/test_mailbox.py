"""Unit tests for the agent mailbox: order, de-duplication, discard and waking."""

from __future__ import annotations

import asyncio

import pytest

from troupe.runtime.agent.mailbox import Mailbox
from troupe.runtime.ids import MessageId
from troupe.runtime.messages import Envelope, MessageKind


def env(content: str = "", *, id: str | None = None, kind: MessageKind = MessageKind.TEXT) -> Envelope:
    extra = {"id": MessageId(id)} if id is not None else {}
    return Envelope(session_id="s-1", sender="user", recipient="lead", content=content, kind=kind, **extra)


def contents(items: list[Envelope]) -> list[str]:
    return [e.content for e in items]


def test_new_mailbox_is_empty():
    box = Mailbox()
    assert len(box) == 0
    assert box.take_all() == []
    assert box.duplicates == 0


def test_fifo_order():
    box = Mailbox()
    for c in ["one", "two", "three", "four"]:
        assert box.put(env(c)) is True
    assert len(box) == 4
    assert contents(box.take_all()) == ["one", "two", "three", "four"]
    assert len(box) == 0
    assert box.take_all() == []


def test_take_all_then_more_keeps_order():
    box = Mailbox()
    box.put(env("a"))
    assert contents(box.take_all()) == ["a"]
    box.put(env("b"))
    box.put(env("c"))
    assert contents(box.take_all()) == ["b", "c"]


def test_duplicate_id_is_dropped_and_counted():
    box = Mailbox()
    first = env("first", id="m-1")
    assert box.put(first) is True
    assert box.put(env("redelivered", id="m-1")) is False
    assert box.put(first) is False
    assert box.duplicates == 2
    assert len(box) == 1
    assert contents(box.take_all()) == ["first"]


def test_duplicate_rejected_even_after_take_all():
    box = Mailbox()
    box.put(env("a", id="m-1"))
    box.take_all()
    assert box.put(env("a again", id="m-1")) is False
    assert len(box) == 0
    assert box.duplicates == 1


def test_broadcast_copies_collapse_by_id():
    box = Mailbox()
    original = Envelope(session_id="s-1", sender="lead", topic="workers", content="hi")
    assert box.put(original.to("w1")) is True
    assert box.put(original.to("w1")) is False
    assert len(box) == 1


def test_remember_marks_ids_without_queueing():
    box = Mailbox()
    mid = MessageId("m-control")
    assert box.seen(mid) is False
    assert box.remember(mid) is True
    assert box.seen(mid) is True
    assert len(box) == 0
    assert box.remember(mid) is False
    assert box.duplicates == 1
    # a later put of the same id is a re-delivery
    assert box.put(env("x", id="m-control")) is False
    assert box.duplicates == 2
    assert len(box) == 0


def test_discard_with_predicate():
    box = Mailbox()
    for c in ["keep1", "drop1", "keep2", "drop2", "keep3"]:
        box.put(env(c))
    assert box.discard(lambda e: e.content.startswith("drop")) == 2
    assert len(box) == 3
    assert contents(box.take_all()) == ["keep1", "keep2", "keep3"]


def test_discard_nothing_matches():
    box = Mailbox()
    box.put(env("a"))
    assert box.discard(lambda e: False) == 0
    assert contents(box.take_all()) == ["a"]


def test_discarded_ids_stay_remembered():
    box = Mailbox()
    box.put(env("a", id="m-1"))
    assert box.discard(lambda e: True) == 1
    assert box.put(env("a", id="m-1")) is False


async def _is_blocked(box: Mailbox) -> bool:
    try:
        await asyncio.wait_for(box.wait(), timeout=0.02)
    except TimeoutError:
        return True
    return False


async def test_wait_wakes_on_put():
    box = Mailbox()
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(env("hello"))
    await asyncio.wait_for(waiter, timeout=1)
    assert contents(box.take_all()) == ["hello"]


async def test_wait_returns_at_once_when_messages_queued():
    box = Mailbox()
    box.put(env("x"))
    await asyncio.wait_for(box.wait(), timeout=1)
    assert len(box) == 1  # waiting does not consume


async def test_wait_blocks_after_take_all():
    box = Mailbox()
    box.put(env("x"))
    box.take_all()
    assert await _is_blocked(box)


async def test_duplicate_put_does_not_wake():
    box = Mailbox()
    box.put(env("x", id="m-1"))
    box.take_all()
    assert box.put(env("x", id="m-1")) is False
    assert await _is_blocked(box)


async def test_discard_everything_clears_ready():
    box = Mailbox()
    box.put(env("a"))
    box.discard(lambda e: True)
    assert await _is_blocked(box)


async def test_discard_some_keeps_ready():
    box = Mailbox()
    box.put(env("a"))
    box.put(env("b"))
    box.discard(lambda e: e.content == "a")
    assert not await _is_blocked(box)


async def test_wake_without_message():
    box = Mailbox()
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.wake()
    await asyncio.wait_for(waiter, timeout=1)
    assert len(box) == 0
    assert box.take_all() == []
    assert await _is_blocked(box)  # take_all reset the wake


def test_seen_memory_is_bounded():
    box = Mailbox(remember=3)
    for i in range(1, 5):  # m-1 .. m-4; m-1 falls out of memory
        assert box.put(env(f"{i}", id=f"m-{i}")) is True
    assert [box.seen(MessageId(f"m-{i}")) for i in range(1, 5)] == [False, True, True, True]
    assert box.put(env("1 again", id="m-1")) is True  # the oldest id is accepted again
    assert box.put(env("4 again", id="m-4")) is False  # recent ids are still de-duplicated
    # accepting m-1 again evicted m-2
    assert [box.seen(MessageId(f"m-{i}")) for i in range(1, 5)] == [True, False, True, True]
    assert contents(box.take_all()) == ["1", "2", "3", "4", "1 again"]
    assert box.duplicates == 1


def test_duplicate_does_not_refresh_memory_order():
    box = Mailbox(remember=2)
    box.put(env(id="m-1"))
    box.put(env(id="m-2"))
    assert box.put(env(id="m-1")) is False
    box.put(env(id="m-3"))  # evicts the oldest insertion, m-1
    assert (box.seen(MessageId("m-1")), box.seen(MessageId("m-2")), box.seen(MessageId("m-3"))) == (
        False,
        True,
        True,
    )


@pytest.mark.parametrize("n", [1, 2, 10])
def test_len_tracks_queue(n):
    box = Mailbox()
    for i in range(n):
        box.put(env(str(i)))
        assert len(box) == i + 1
    box.take_all()
    assert len(box) == 0
