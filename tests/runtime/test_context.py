"""Unit tests for the conversation context: rendering, token budget and compaction."""

from __future__ import annotations

import pytest

from troupe.runtime.agent.context import Compaction, Context, estimate_tokens, render_incoming
from troupe.runtime.llm.types import ChatMessage, LLMRequest, ToolCall, ToolSchema
from troupe.runtime.messages import Envelope, MessageKind


def env(kind: MessageKind, content: str, sender: str = "lead", **data: object) -> Envelope:
    return Envelope(session_id="s-1", sender=sender, recipient="worker", kind=kind, content=content, data=dict(data))


# --- render_incoming -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("envelope", "content", "name"),
    [
        (env(MessageKind.TEXT, "hello", sender="user"), "hello", "user"),
        (env(MessageKind.TASK, "Compute 2+2", task_id="t-1"), "New task t-1 from lead: Compute 2+2", "lead"),
        (env(MessageKind.TASK, "No id"), "New task ? from lead: No id", "lead"),
        (env(MessageKind.NOTICE, "Task t-1 done: 4", sender="tasks", task_id="t-1"),
         "Notice from tasks: Task t-1 done: 4", "tasks"),
        (env(MessageKind.TEXT, "4", sender="worker_a", is_reply=True), "Reply from worker_a: 4", "worker_a"),
        (env(MessageKind.TEXT, "not a reply", sender="worker_a", is_reply=False),
         "Message from worker_a: not a reply", "worker_a"),
    ],
)
def test_render_incoming(envelope, content, name):
    msg = render_incoming(envelope)
    assert msg == ChatMessage(role="user", content=content, name=name)
    assert type(msg.name) is str


def test_add_incoming_renders_each_in_order():
    ctx = Context(system="sys", budget_tokens=10_000)
    ctx.add_incoming([env(MessageKind.TEXT, "a", sender="user"), env(MessageKind.NOTICE, "b", sender="tasks")])
    assert [m.content for m in ctx.messages] == ["a", "Notice from tasks: b"]


# --- tokens ----------------------------------------------------------------------------------
def test_estimate_tokens():
    assert estimate_tokens(ChatMessage(role="user", content="x" * 40)) == 14
    assert estimate_tokens(ChatMessage(role="assistant")) == 4
    call = ToolCall(id="c", name="calculator", arguments='{"expression": "1+1"}')  # 10 + 22 chars
    assert estimate_tokens(ChatMessage(role="assistant", content="ok", tool_calls=[call])) == (2 + 32) // 4 + 4


def test_context_tokens_counts_system():
    ctx = Context(system="s" * 8, budget_tokens=100)
    assert ctx.tokens() == 6
    ctx.add(ChatMessage(role="user", content="u" * 16))
    assert ctx.tokens() == 6 + 8


# --- compaction ------------------------------------------------------------------------------
def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def call_round(call_id: str, result: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="assistant", tool_calls=[ToolCall(id=call_id, name="calculator",
                                                            arguments='{"expression": "1+1"}')]),
        ChatMessage(role="tool", content=result, tool_call_id=call_id, name="calculator"),
    ]


def build(budget: int, *, b_text: str = "B" * 400) -> Context:
    """Three turns: A (large, with a tool round), B, and the current turn C (mid tool round)."""
    ctx = Context(system="sys", budget_tokens=budget)
    for m in [
        user("A" * 400), *call_round("a1", "2"), ChatMessage(role="assistant", content="done A"),
        user(b_text), *call_round("b1", "2"), ChatMessage(role="assistant", content="done B"),
        user("C" * 40), *call_round("c1", "2"),
    ]:
        ctx.add(m)
    return ctx


def assert_tool_rounds_intact(messages: list[ChatMessage]) -> None:
    """Every tool result follows its assistant call with no user message in between, and vice versa."""
    open_ids: set[str] = set()
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            assert not open_ids, "a new call round started before the previous got its results"
            open_ids = {tc.id for tc in m.tool_calls}
        elif m.role == "tool":
            assert m.tool_call_id in open_ids, f"orphan tool result {m.tool_call_id}"
            open_ids.discard(m.tool_call_id)
        else:
            assert not open_ids, f"tool call(s) {open_ids} separated from their results"


def test_no_compaction_under_budget():
    ctx = build(10_000)
    before = list(ctx.messages)
    assert ctx.compact() is None
    assert ctx.messages == before


def test_no_compaction_at_exact_budget():
    ctx = build(10_000)
    ctx.budget_tokens = ctx.tokens()
    assert ctx.compact() is None


def test_compaction_folds_oldest_turns_and_keeps_current():
    ctx = build(200)
    original = list(ctx.messages)
    before = ctx.tokens()
    assert before > 200
    result = ctx.compact()
    assert isinstance(result, Compaction)
    # the current turn (last user message onwards) is kept verbatim; turns A and B are folded
    assert ctx.messages[1:] == original[-3:]
    summary = ctx.messages[0]
    assert summary.role == "user"
    assert summary.content.splitlines() == [
        "[compacted 8 earlier messages]",
        f"- user: {'A' * 160}…",
        '- assistant called calculator({"expression": "1+1"})',
        "- tool: 2",
        "- assistant: done A",
        f"- user: {'B' * 160}…",
        '- assistant called calculator({"expression": "1+1"})',
        "- tool: 2",
        "- assistant: done B",
    ]
    assert result == Compaction(removed_messages=8, tokens_before=before, tokens_after=ctx.tokens())
    assert result.tokens_after < result.tokens_before
    assert_tool_rounds_intact(ctx.messages)


def test_compaction_keeps_newer_turns_that_fit_half_the_budget():
    ctx = build(150, b_text="B" * 40)
    original = list(ctx.messages)
    result = ctx.compact()
    assert result is not None and result.removed_messages == 4
    assert ctx.messages[1:] == original[4:]  # turn B and the current turn C are kept
    assert ctx.messages[0].content.splitlines()[0] == "[compacted 4 earlier messages]"
    assert ctx.tokens() < result.tokens_before
    assert_tool_rounds_intact(ctx.messages)


def test_compaction_never_splits_a_tool_round():
    ctx = Context(system="sys", budget_tokens=120)
    for i in range(6):
        ctx.add(user(f"question {i} " + "q" * 100))
        ctx.add(ChatMessage(role="assistant", content="thinking",
                            tool_calls=[ToolCall(id=f"x{i}", name="calculator", arguments="{}"),
                                        ToolCall(id=f"y{i}", name="calculator", arguments="{}")]))
        ctx.add(ChatMessage(role="tool", content="1", tool_call_id=f"x{i}"))
        ctx.add(ChatMessage(role="tool", content="2", tool_call_id=f"y{i}"))
        ctx.add(ChatMessage(role="assistant", content=f"answer {i}"))
    assert ctx.compact() is not None
    assert_tool_rounds_intact(ctx.messages)
    # whatever was kept starts at a user message right after the summary
    assert ctx.messages[0].content.startswith("[compacted ")
    assert ctx.messages[1].role == "user" and ctx.messages[1].content.startswith("question ")
    assert ctx.messages[-1].content == "answer 5"


def test_single_turn_over_budget_is_left_alone():
    ctx = Context(system="sys", budget_tokens=50)
    ctx.add(user("x" * 1000))
    ctx.add(ChatMessage(role="assistant", content="y" * 1000))
    assert ctx.compact() is None
    assert len(ctx.messages) == 2


def test_current_turn_alone_over_budget_still_folds_the_rest():
    ctx = Context(system="sys", budget_tokens=100)
    ctx.add(user("old"))
    ctx.add(ChatMessage(role="assistant", content="old answer"))
    ctx.add(user("n" * 2000))
    result = ctx.compact()
    assert result is not None and result.removed_messages == 2
    assert [m.content for m in ctx.messages[1:]] == ["n" * 2000]
    assert ctx.messages[0].content == "[compacted 2 earlier messages]\n- user: old\n- assistant: old answer"


def test_repeated_compaction_treats_summary_as_history():
    ctx = build(200)
    assert ctx.compact() is not None
    ctx.add(ChatMessage(role="assistant", content="done C"))
    ctx.add(user("D" * 400))
    result = ctx.compact()
    assert result is not None
    # the old summary and turn C are folded into one new summary; only turn D remains
    assert len(ctx.messages) == 2
    assert ctx.messages[1].content == "D" * 400
    lines = ctx.messages[0].content.splitlines()
    assert lines[0] == f"[compacted {result.removed_messages} earlier messages]"
    assert lines[1].startswith("- user: [compacted 8 earlier messages]")
    assert sum(1 for m in ctx.messages if (m.content or "").startswith("[compacted")) == 1


def test_summary_keeps_last_forty_lines():
    ctx = Context(system="sys", budget_tokens=60)
    for i in range(30):
        ctx.add(user(f"u{i}"))
        ctx.add(ChatMessage(role="assistant", content=f"a{i}"))
    ctx.add(user("current " + "z" * 400))
    result = ctx.compact()
    assert result is not None and result.removed_messages == 60
    lines = ctx.messages[0].content.splitlines()
    assert lines[0] == "[compacted 60 earlier messages]"
    assert len(lines) == 41
    assert lines[1] == "- user: u10" and lines[-1] == "- assistant: a29"


def test_summary_collapses_whitespace():
    ctx = Context(system="sys", budget_tokens=30)
    ctx.add(user("line one\n\n   line   two"))
    ctx.add(user("y" * 400))
    ctx.compact()
    assert ctx.messages[0].content == "[compacted 1 earlier messages]\n- user: line one line two"


# --- request ---------------------------------------------------------------------------------
def test_request_puts_system_first():
    ctx = Context(system="You are lead.", budget_tokens=1000)
    ctx.add(user("hi"))
    ctx.add(ChatMessage(role="assistant", content="hello"))
    tools = [ToolSchema(name="calculator")]
    req = ctx.request(tools, temperature=0.2)
    assert isinstance(req, LLMRequest)
    assert req.messages == [
        ChatMessage(role="system", content="You are lead."),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hello"),
    ]
    assert req.tools == tools
    assert req.temperature == 0.2
    assert ctx.request([]).temperature is None
    # the request is a snapshot: later additions do not change it
    ctx.add(user("more"))
    assert len(req.messages) == 3


def test_request_after_compaction():
    ctx = build(200)
    ctx.compact()
    req = ctx.request([])
    assert [m.role for m in req.messages] == ["system", "user", "user", "assistant", "tool"]
    assert req.messages[1].content.startswith("[compacted 8 earlier messages]")
