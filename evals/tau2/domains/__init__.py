"""The τ²-bench domains' tools, re-implemented as plain functions over a JSON database (a dict).

Each domain module exposes ``TOOLS`` (name -> function taking the db first) and ``WRITES`` (the names
that change the db). :func:`toolkit` picks one by domain name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DOMAINS = ("mock", "airline", "retail")


def toolkit(domain: str) -> ModuleType:
    """The tool module of ``domain`` (``mock``, ``airline`` or ``retail``)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown τ² domain {domain!r}; one of {', '.join(DOMAINS)}")
    return importlib.import_module(f"troupe.evals.tau2.domains.{domain}")


__all__ = ["DOMAINS", "toolkit"]
