"""What the ``knowledge_search`` tool reaches: the team's knowledge root, settings and embedder.

The host builds one :class:`KnowledgeAccess` per session (from the team's ``knowledge:`` settings and
the runtime's lake) and hands it to each agent's tool context; the tool asks it to search the
namespaces the agent is granted. The embedder is built on the first search that needs it.
"""

from __future__ import annotations

import json
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from troupe.runtime.capabilities import KnowledgeSettings
from troupe.runtime.config import ModelProfile
from troupe.runtime.eventlog.lake import default_lake
from troupe.runtime.knowledge.embedding import Embedder, get_embedder
from troupe.runtime.knowledge.search import SearchResult, load_index, search_many
from troupe.runtime.knowledge.store import KnowledgeStore

KNOWLEDGE_DIR = "knowledge"


def knowledge_root(settings: KnowledgeSettings, lake: str | None, values: Mapping[str, str] | None = None) -> str:
    """``settings.location``, else ``<lake>/knowledge``, the lake defaulting to the CLI's (``$TROUPE_LAKE`` or
    ``./.troupe/lake``: :func:`~troupe.runtime.eventlog.lake.default_lake`), so ``troupe knowledge ingest``
    and a session without a lake of its own agree. In ``location``, ``${session_id}``, ``${sample_dir}``,
    ``${case_id}`` and ``${sample}`` are replaced by ``values`` (a session's: a knowledge base per eval sample)."""
    if settings.location:
        return string.Template(settings.location).safe_substitute(values or {})
    if lake is None:
        lake = str(default_lake())
    return f"{str(lake).rstrip('/')}/{KNOWLEDGE_DIR}"


@dataclass
class KnowledgeAccess:
    root: str
    settings: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    models: Mapping[str, ModelProfile] = field(default_factory=dict)
    make_embedder: Callable[[], Embedder | None] | None = None
    """Builds the embedder (default: :func:`get_embedder` of the settings); tests pass a fake."""
    _embedder: Embedder | None = field(default=None, init=False, repr=False)
    _built: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def embedder(self) -> Embedder | None:
        """The team's embedder (``None``: BM25 only); :class:`KnowledgeBackendError` with a diagnostic when missing."""
        with self._lock:
            if not self._built:
                make = self.make_embedder or (lambda: get_embedder(self.settings, self.models))
                self._embedder = make()
                self._built = True
            return self._embedder

    def search(self, namespaces: Sequence[str], query: str, k: int | None = None) -> SearchResult:
        store = KnowledgeStore(self.root)
        indexes = [load_index(store, ns) for ns in namespaces]
        return search_many(indexes, query, k or self.settings.top_k, embedder=self.embedder(),
                           rerank_hits=self.settings.rerank)


_SHARED: dict[tuple[str, str, str], KnowledgeAccess] = {}


def shared_access(settings: KnowledgeSettings, models: Mapping[str, ModelProfile], *,
                  lake: str | None, values: Mapping[str, str] | None = None) -> KnowledgeAccess:
    """One :class:`KnowledgeAccess` per root and settings in this process (agents of a host share its embedder);
    the root is :func:`knowledge_root`'s."""
    root = knowledge_root(settings, lake, values)
    key = (root, settings.model_dump_json(), json.dumps({k: v.model_dump(mode="json") for k, v in models.items()},
                                                       sort_keys=True, default=str))
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= 16:
            _SHARED.pop(next(iter(_SHARED)))
        found = _SHARED[key] = KnowledgeAccess(root, settings, dict(models))
    return found


__all__ = ["KNOWLEDGE_DIR", "KnowledgeAccess", "knowledge_root", "shared_access"]
