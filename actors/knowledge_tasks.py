"""Knowledge ingestion fanned out across the cluster: each batch of files (or texts to embed) is a Ray task.

:class:`RayMapper` is the :class:`~troupe.runtime.knowledge.ingest.Mapper` that ``troupe knowledge
ingest`` uses for large corpora; the batches are the plain functions of
:mod:`troupe.runtime.knowledge.ingest`, and results come back as they finish (for the progress bar).
Every node must see the files (a shared filesystem), as for any path a Ray task opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray

from troupe.actors.options import knowledge_task_options


class RayMapper:
    """Runs each job as a Ray task, at most ``window`` in flight; yields ``(job index, result)`` as they finish."""

    remote = True

    def __init__(self, *, window: int = 64) -> None:
        self.window = window

    def __call__(self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        task = ray.remote(fn).options(**knowledge_task_options(fn.__name__))
        pending: dict[Any, int] = {}
        queue = iter(enumerate(jobs))
        for i, job in queue:
            pending[task.remote(*job)] = i
            if len(pending) >= self.window:
                break
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            yield pending.pop(ref), ray.get(ref)
            for i, job in queue:
                pending[task.remote(*job)] = i
                break


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``: the running one) or start a local Ray; ``True`` if we started it."""
    if ray.is_initialized():
        return False
    ray.init(address=address or None, log_to_driver=False)
    return True


def shutdown() -> None:
    ray.shutdown()


__all__ = ["RayMapper", "connect", "shutdown"]
