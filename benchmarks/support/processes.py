"""Finding the processes a run left behind, by a marker in their command line."""

from __future__ import annotations

import psutil


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line holds ``marker`` (ones that vanish while looked at are skipped)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or ()):
                found.append(p)
        except psutil.Error:
            continue
    return found


__all__ = ["processes_with"]
