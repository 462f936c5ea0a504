"""Sandboxed execution: ``shell`` and opted-in cpu tools run inside Linux namespaces (bubblewrap).

* :mod:`.probe` - :func:`sandbox_status`: can a sandbox be made here, and if not, why and how to fix it.
* :mod:`.policy` - :class:`SandboxRequest`: one call's workspace, network and limits.
* :mod:`.mounts` - the bubblewrap command line (what of the host a sandbox sees).
* :mod:`.limits` - per-call cgroups (``pids.max``, ``memory.limit_in_bytes``), or ``prlimit``.
* :mod:`.confine` - :class:`Confinement`: one call's sandbox, and how to stop everything in it.
* :mod:`.function` - :func:`run_function`: a cpu tool's function in a child Python inside the sandbox.

See ``docs/sandbox.md``.
"""

from troupe.tools.sandbox.confine import Confinement, require_sandbox, scrubbed_env
from troupe.tools.sandbox.function import SandboxedCall, run_function, sandboxed_target
from troupe.tools.sandbox.policy import NETWORK_SCOPE, SandboxRequest, has_scope
from troupe.tools.sandbox.probe import SandboxStatus, sandbox_status

__all__ = ["NETWORK_SCOPE", "Confinement", "SandboxRequest", "SandboxStatus", "SandboxedCall", "has_scope",
           "require_sandbox", "run_function", "sandbox_status", "sandboxed_target", "scrubbed_env"]
