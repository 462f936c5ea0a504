"""τ²-bench's mock domain: users and their tasks (create, list, set status), plus the assertion
functions its tasks check the environment with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from troupe.evals.tau2.domains.common import Db, TauToolError, dump, transfer_to_human_agents


def create_task(db: Db, user_id: str, title: str, description: str | None = None) -> str:
    """Create a new task for a user.

    Args:
        user_id: The ID of the user creating the task, such as 'user_1'.
        title: The title of the task.
        description: An optional description of the task.
    """
    if user_id not in db["users"]:
        raise TauToolError(f"User {user_id} not found")
    task_id = f"task_{len(db['tasks']) + 1}"
    task = {"task_id": task_id, "title": title, "description": description, "status": "pending"}
    db["tasks"][task_id] = task
    db["users"][user_id]["tasks"].append(task_id)
    return dump(task)


def get_users(db: Db) -> str:
    """Get all users in the database."""
    return dump(list(db["users"].values()))


def update_task_status(db: Db, task_id: str, status: str) -> str:
    """Update the status of a task.

    Args:
        task_id: The ID of the task to update, such as 'task_1'.
        status: The new status of the task: 'pending' or 'completed'.
    """
    if task_id not in db["tasks"]:
        raise TauToolError(f"Task {task_id} not found")
    if status not in ("pending", "completed"):
        raise TauToolError(f"Invalid status {status!r}: use 'pending' or 'completed'")
    db["tasks"][task_id]["status"] = status
    return dump(db["tasks"][task_id])


def assert_number_of_tasks(db: Db, user_id: str, expected_number: int) -> bool:
    """Whether the user has this many tasks (an environment assertion, not a tool)."""
    return user_id in db["users"] and len(db["users"][user_id]["tasks"]) == expected_number


def assert_task_status(db: Db, task_id: str, expected_status: str) -> bool:
    """Whether the task has this status (an environment assertion, not a tool)."""
    return task_id in db["tasks"] and db["tasks"][task_id]["status"] == expected_status


TOOLS: dict[str, Callable[..., str]] = {
    "create_task": create_task,
    "get_users": get_users,
    "update_task_status": update_task_status,
    "transfer_to_human_agents": transfer_to_human_agents,
}
WRITES = frozenset({"create_task", "update_task_status"})
ASSERTIONS: dict[str, Callable[..., Any]] = {
    "assert_number_of_tasks": assert_number_of_tasks,
    "assert_task_status": assert_task_status,
}

__all__ = ["ASSERTIONS", "TOOLS", "WRITES"]
