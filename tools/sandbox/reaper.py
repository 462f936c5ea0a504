"""The first process inside a shell sandbox: runs the command, then reports how it ended.

Run by the sandbox's Python with ``-I -S -c <this file's text> FD ARGV...`` (nothing of ``troupe``
is importable inside a shell sandbox). It starts ``ARGV``, waits for it, gives the processes the
command left running :data:`GRACE_S` to finish, and writes ``{"code": N, "left": K}`` to ``FD``:
``N`` is the command's status as Python gives it (negative: killed by that signal, which
bubblewrap's own exit status cannot tell from an ordinary ``exit 137``), ``K`` how many processes
were still running. When it exits, the sandbox's pid namespace ends and the kernel kills them.
"""

import json
import os
import subprocess
import sys
import time

GRACE_S = 0.3


def _others() -> int:
    """Live processes of this namespace besides its init (pid 1) and this one."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, os.getpid()):
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            count += 1
    return count


def main() -> None:
    fd = int(sys.argv[1])
    code = subprocess.call(sys.argv[2:])
    deadline = time.monotonic() + GRACE_S
    while (left := _others()) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.write(fd, json.dumps({"code": code, "left": left}).encode())
    os.close(fd)


if __name__ == "__main__":
    main()
