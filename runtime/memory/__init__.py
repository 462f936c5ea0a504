"""Memory scopes: what an agent remembers across turns, sessions and clusters (docs/memory.md).

:mod:`~troupe.runtime.memory.model` (entries), :mod:`~troupe.runtime.memory.text` (tokens, BM25),
:mod:`~troupe.runtime.memory.store` (one namespace's Parquet under ``<lake>/memory/``),
:mod:`~troupe.runtime.memory.service` (the session service behind the memory tools), and
:mod:`~troupe.runtime.memory.recall` (what is recalled into an agent's context at the start of a turn).
"""
