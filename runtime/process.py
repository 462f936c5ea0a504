"""What kind of process this code runs in (without importing Ray when it isn't loaded)."""

from __future__ import annotations

import sys


def in_ray_worker() -> bool:
    """True inside a Ray worker or actor process (not the driver, not a plain process)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    try:
        return bool(ray.is_initialized()) and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    except Exception:  # noqa: BLE001 - any doubt means "not a worker": the in-process fallbacks still work
        return False


__all__ = ["in_ray_worker"]
