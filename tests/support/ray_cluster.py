"""A simulated multi-node Ray cluster in this process (``ray.cluster_utils.Cluster``), for the
``multinode`` tests: a head plus worker nodes, each with custom resources that name it.

It is a Ray of its own, separate from the session-wide test Ray (tests/support/ray_fixture.py): if that
one is up when the cluster starts, it is shut down first and started again, as it was, after the
cluster is gone, so test files after this one find it as they expect. The cluster is stopped with
``cluster.shutdown()`` (never ``ray stop``). Starting a cluster writes its address to Ray's
machine-wide ``ray_current_cluster`` file (where a bare ``ray.init()`` on this machine looks) and its
shutdown deletes that file: whatever the file held before is put back both times, so other Rays on a
shared machine are not redirected to this one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants
from ray._private.node import Node
from ray._private.utils import get_ray_address_file
from ray.cluster_utils import Cluster

from tests.support.ray_fixture import start_session_ray


@dataclass
class SimCluster:
    cluster: Cluster
    head: Node
    workers: dict[str, Node] = field(default_factory=dict)
    """Worker nodes by the custom resource that names them."""
    removed: dict[str, Node] = field(default_factory=dict)
    """Worker nodes taken away (:meth:`remove`)."""

    def node_id(self, name: str) -> str:
        return (self.head if name == "head" else self.workers[name]).node_id

    def name_of(self, node_id: str) -> str:
        if node_id == self.head.node_id:
            return "head"
        known = {**self.workers, **self.removed}
        return next((name for name, node in known.items() if node.node_id == node_id), node_id)

    def remove(self, name: str) -> None:
        """Take a worker node away at once, as when its machine is lost: every worker process on it
        (the actors and tasks there) is killed, then its raylet and the rest of the node. (Without
        the first step the workers would live on for up to a second after their raylet, and calls
        to them could still be answered.)"""
        node = self.removed[name] = self.workers.pop(name)
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        for pid in _descendants(raylet):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.remove_node(node, allow_graceful=False)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux: read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class _AddressFile:
    """Ray's machine-wide ``ray_current_cluster`` file, kept as it was."""

    def __init__(self) -> None:
        self.path = Path(get_ray_address_file(None))
        self.before = self.path.read_text() if self.path.exists() else None

    def restore(self) -> None:
        if self.before is not None:
            self.path.write_text(self.before)
        else:
            self.path.unlink(missing_ok=True)


@contextmanager
def simulated_cluster(*, head_cpus: int = 1, workers: dict[str, dict[str, Any]], namespace: str = "troupe",
                      system_config: dict[str, Any] | None = None) -> Iterator[SimCluster]:
    """A head (custom resource ``head``) and one worker per entry of ``workers``
    (``name -> add_node arguments``; each gets the custom resource ``name: 1`` besides what it asks),
    with this process connected as the driver. Everything is torn down on exit. ``system_config``
    is Ray's ``_system_config`` for the cluster (e.g. faster health checks, so a lost node is noticed
    in about a second rather than Ray's default ~15 s)."""
    session_ray_was_up = ray.is_initialized()
    if session_ray_was_up:
        ray.shutdown()
    address_file = _AddressFile()
    temp_dir = tempfile.mkdtemp(prefix="tmn-", dir="/tmp")  # Ray's socket paths must stay short
    cluster: Cluster | None = None
    try:
        common = {"include_dashboard": False, "temp_dir": temp_dir}
        head_args = {"num_cpus": head_cpus, "resources": {"head": 1}, **common}
        if system_config:
            head_args["_system_config"] = system_config
        cluster = Cluster(initialize_head=True, head_node_args=head_args)
        sim = SimCluster(cluster, cluster.head_node)
        for name, args in workers.items():
            args = dict(args)
            resources = {name: 1, **args.pop("resources", {})}
            sim.workers[name] = cluster.add_node(resources=resources, **args)
        address_file.restore()
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=namespace, log_to_driver=False)
        yield sim
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        address_file.restore()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if session_ray_was_up:
            start_session_ray()


__all__ = ["SimCluster", "simulated_cluster"]
