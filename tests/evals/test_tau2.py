"""τ²-bench suites: the oracle's replayed actions through the re-implemented tools score 1.0 on every
task, and the grader fails what it should (no Ray, no sessions)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from troupe.evals.tau2.domains.common import db_hash
from troupe.evals.tau2.grade import score
from troupe.evals.tau2.oracle import Oracle
from troupe.evals.tau2.task import base_db, call, gold_actions, initial_db, tasks
from troupe.runtime.llm.types import ChatMessage, LLMRequest, ToolSchema

DOMAINS = ("mock", "airline", "retail")


@functools.cache
def run_oracle(domain: str, task_id: str) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Drive the oracle model function as an agent loop would, against a fresh starting db."""
    fn = getattr(Oracle(domain), task_id)
    db = initial_db(domain, tasks(domain)[task_id])
    from troupe.evals.tau2.domains import toolkit

    tools = [ToolSchema(name=f"tau2__{n}") for n in toolkit(domain).TOOLS]
    messages = [ChatMessage(role="user", content="hello")]
    calls: list[dict[str, Any]] = []
    for _ in range(100):
        response = fn(LLMRequest(messages=messages, tools=tools), "agent")
        if not response.tool_calls:
            return db, response.text, calls
        messages.append(ChatMessage(role="assistant", tool_calls=response.tool_calls))
        for tc in response.tool_calls:
            args = tc.parsed_arguments()
            calls.append({"name": tc.name, "arguments": args})
            text, _ = call(domain, db, tc.name.removeprefix("tau2__"), args)
            messages.append(ChatMessage(role="tool", tool_call_id=tc.id, content=text))
    raise AssertionError("the oracle never stopped")


@pytest.mark.parametrize("domain", DOMAINS)
def test_oracle_scores_one_on_every_task(domain: str) -> None:
    all_tasks = tasks(domain)
    assert len(all_tasks) == {"mock": 9, "airline": 50, "retail": 114}[domain]
    failures = {}
    without = {t for t, task in all_tasks.items() if not gold_actions(task)}
    # tasks whose ground truth is "do nothing" (graded on an unchanged db and NL assertions)
    assert len(all_tasks) - len(without) == {"mock": 7, "airline": 43, "retail": 112}[domain]
    for task_id, task in all_tasks.items():
        if task_id in without:
            continue
        db, text, calls = run_oracle(domain, task_id)
        grade = score(domain, task, db, [text], calls)
        if grade.score != 1.0:
            failures[task_id] = grade.explanation
    assert not failures


@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_ground_truth_actions_change_the_db_and_the_grader_sees_it(domain: str) -> None:
    changed = 0
    for task_id, task in tasks(domain).items():
        start = initial_db(domain, task)
        db, text, calls = run_oracle(domain, task_id)
        if db_hash(db) == db_hash(start):
            continue
        changed += 1
        untouched = score(domain, task, start, [text], calls)
        assert not untouched.passed and "DB" in untouched.explanation
    assert changed >= 20  # most tasks write: the check is not vacuous


def test_gold_calls_are_refused_only_where_the_task_means_it() -> None:
    # Some retail ground truths call on purpose what the tools refuse (a user's wrong email, the
    # policy's example product id, a refund to a non-original method before a transfer); airline's
    # never do. Any other refusal would mean the re-implemented tools differ from τ²-bench's.
    refused = []
    for domain in DOMAINS:
        for _task_id, task in tasks(domain).items():
            db = initial_db(domain, task)
            for action in gold_actions(task):
                text, failed = call(domain, db, action.name, action.arguments)
                if failed:
                    refused.append((domain, action.name, text))
    assert not [r for r in refused if r[0] != "retail"]
    assert {(name, text) for _, name, text in refused} == {
        ("get_product_details", "Error: Product not found"),
        ("find_user_id_by_email", "Error: User not found"),
        ("find_user_id_by_name_zip", "Error: User not found"),
        ("get_order_details", "Error: Order not found"),
        ("return_delivered_order_items", "Error: Payment method should be the original payment method"),
        ("exchange_delivered_order_items", "Error: Non-delivered order cannot be exchanged"),
        ("exchange_delivered_order_items", "Error: Insufficient gift card balance to pay for the price difference"),
    }
    assert len(refused) == 23


def test_missing_communicate_info_fails() -> None:
    task = next(t for t in tasks("airline").values() if t.evaluation_criteria and t.evaluation_criteria.communicate_info)
    db, _text, calls = run_oracle("airline", task.id)
    grade = score("airline", task, db, ["I could not help."], calls)
    assert not grade.passed and "COMMUNICATE" in grade.explanation


def test_mock_action_basis_needs_the_call() -> None:
    task = tasks("mock")["impossible_task_1"]
    db = initial_db("mock", task)
    assert not score("mock", task, db, ["sorry"], []).passed
    assert score("mock", task, db, ["sorry"], [{"name": "tau2__transfer_to_human_agents", "arguments": {}}]).passed


def test_mock_initial_state_is_applied() -> None:
    data = tasks("mock")["update_task_with_initialization_data"]
    history = tasks("mock")["update_task_with_message_history"]
    assert initial_db("mock", data)["tasks"]["task_2"]["status"] == "pending"
    assert initial_db("mock", history)["tasks"]["task_2"]["title"] == "Project Review"
    assert "task_2" not in base_db("mock")["tasks"]


def test_a_refused_call_leaves_the_db_alone() -> None:
    db = base_db("retail")
    before = db_hash(db)
    text, failed = call("retail", db, "cancel_pending_order", {"order_id": "#W0000000", "reason": "no longer needed"})
    assert failed and "Order not found" in text and db_hash(db) == before
    text, failed = call("retail", db, "list_all_product_types", {})
    assert not failed and len(json.loads(text)) == 50


def test_the_mcp_server_keeps_each_sessions_db_in_its_own_file(tmp_path: Any) -> None:
    import asyncio

    from mcp import Client

    from troupe.evals.tau2.grade import final_db_of
    from troupe.evals.tau2.server import build

    task = next(t for t in tasks("airline").values() if any(a.name == "cancel_reservation" for a in gold_actions(t)))

    async def replay(folder: Any, actions: bool) -> list[bool]:
        errors = []
        async with Client(build("airline", folder, task.id)) as client:
            for action in gold_actions(task) if actions else []:
                errors.append((await client.call_tool(action.name, action.arguments)).is_error)
            bad = await client.call_tool("get_reservation_details", {"reservation_id": "NOPE00"})
            assert bad.is_error and "Reservation NOPE00 not found" in bad.content[0].text  # type: ignore[union-attr]
        return errors

    assert asyncio.run(replay(tmp_path / "a", True)) == [False] * len(gold_actions(task))
    asyncio.run(replay(tmp_path / "b", False))

    class Sample:
        final_state = None
        env_dir = str(tmp_path / "a")

    done, untouched = final_db_of(Sample()), json.loads((tmp_path / "b" / "db.json").read_text())  # type: ignore[arg-type]
    assert done is not None
    assert score("airline", task, done, [" ".join(task.evaluation_criteria.communicate_info or [])], []).passed  # type: ignore[union-attr]
    assert db_hash(untouched) == db_hash(initial_db("airline", task)) != db_hash(done)
