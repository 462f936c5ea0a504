"""``troupe knowledge ingest|reindex|list|drop``: a team's knowledge namespaces in the lake (docs/knowledge.md).

    troupe knowledge ingest NAMESPACE PATH... [--team T] [--embedder E] [--chunk-size N] [--overlap N] [--ray auto|on|off]
    troupe knowledge reindex NAMESPACE [--team T] [--embedder E]   rebuild BM25 and vectors (after changing the embedder)
    troupe knowledge list [NAMESPACE] [--json]                     namespaces (documents, chunks, embedder) or one's documents
    troupe knowledge drop NAMESPACE                                 delete a namespace

Where: ``--location``, else the team's ``knowledge.location``, else ``<lake>/knowledge``. The embedder: ``--embedder``,
else the team's ``knowledge.embedder`` (``default`` without a team). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

RAY_FILES = 200
"""``--ray auto`` fans out over Ray from this many files (or ``RAY_BYTES``) up."""
RAY_BYTES = 50 * 2**20


def _settings(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from troupe.runtime.capabilities import KnowledgeSettings

    settings, models = KnowledgeSettings(), {}
    if args.team:
        from troupe.runtime.config import load_team

        team = load_team(Path(args.team))
        settings, models = team.knowledge, dict(team.models)
    if getattr(args, "embedder", None):
        settings = settings.model_copy(update={"embedder": args.embedder})
    return settings, models


def _root(args: argparse.Namespace, settings: Any) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.knowledge.access import knowledge_root
    from troupe.runtime.storage.location import normalize

    if args.location:
        return normalize(args.location)
    return knowledge_root(settings, normalize(args.lake or default_lake())) or ""


class Bar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._last = 0.0
        self._stage = ""

    def __call__(self, p: Any) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = p.done >= p.total
        if not final and p.stage == self._stage and now - self._last < 0.1:
            return
        self._last, self._stage = now, p.stage
        width = 30
        filled = width if p.total == 0 else int(width * p.done / p.total)
        unit = {"read": "files", "embed": "chunks"}.get(p.stage, "")
        count = f"{p.done}/{p.total} {unit}" if unit else ""
        extra = f", {p.chunks} chunks" if p.chunks and p.stage == "read" else ""
        sys.stderr.write(f"\r{p.stage:<6} [{'#' * filled}{'.' * (width - filled)}] {count}{extra}\x1b[K")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _use_ray(mode: str, paths: list[str]) -> bool:
    if mode != "auto":
        return mode == "on"
    from troupe.runtime.knowledge.loaders import expand

    files = expand(paths)
    return len(files) >= RAY_FILES or sum(p.stat().st_size for p, _ in files) >= RAY_BYTES


def _ingestor(args: argparse.Namespace, settings: Any, models: dict[str, Any], mapper: Any = None) -> Any:
    from troupe.runtime.knowledge.ingest import Ingestor, inline

    options: dict[str, Any] = {"mapper": mapper or inline, "progress": Bar(args.json)}
    for key in ("chunk_size", "overlap"):
        if getattr(args, key, None):
            options[key] = getattr(args, key)
    return Ingestor.from_settings(_root(args, settings), settings, models, **options)


def _report(args: argparse.Namespace, report: Any, verb: str) -> int:
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(f"{verb} {report.namespace}: {report.chunks_total} chunks in {report.documents if verb != 'ingested' else report.files} "
          f"{'documents' if verb != 'ingested' else 'files'} (embedder: {report.embedder or 'none, BM25 only'}; "
          f"{report.seconds:.1f} s)")
    for line in report.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    settings, models = _settings(args)
    if not _use_ray(args.ray, args.paths):
        return _report(args, _ingestor(args, settings, models).ingest(args.namespace, args.paths), "ingested")
    from troupe.actors.knowledge_tasks import RayMapper, connect, shutdown

    started = connect(args.address)
    try:
        report = _ingestor(args, settings, models, RayMapper()).ingest(args.namespace, [str(Path(p).resolve()) for p in args.paths])
    finally:
        if started:
            shutdown()
    return _report(args, report, "ingested")


def _cmd_reindex(args: argparse.Namespace) -> int:
    settings, models = _settings(args)
    return _report(args, _ingestor(args, settings, models).reindex(args.namespace), "reindexed")


def _cmd_list(args: argparse.Namespace) -> int:
    from troupe.runtime.knowledge.store import KnowledgeStore

    settings, _ = _settings(args)
    store = KnowledgeStore(_root(args, settings))
    if args.namespace:
        m = store.require(args.namespace)
        if args.json:
            print(json.dumps({"namespace": args.namespace, "documents": m.documents}, indent=2))
        else:
            for doc, n in sorted(m.documents.items()):
                print(f"{n:>7} chunks  {doc}")
        return 0
    rows = [store.describe(ns) for ns in store.namespaces()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no knowledge namespaces at {store.storage}", file=sys.stderr)
    for r in rows if not args.json else []:
        print(f"{r['namespace']:<24} {r['documents']:>6} documents {r['chunks']:>8} chunks  embedder {r['embedder']}"
              f"{'' if r['dim'] is None else ' (' + str(r['dim']) + '-d)'}  updated {r['updated_at']}")
    return 0


def _cmd_drop(args: argparse.Namespace) -> int:
    from troupe.runtime.knowledge.store import KnowledgeStore

    settings, _ = _settings(args)
    store = KnowledgeStore(_root(args, settings))
    if not store.drop(args.namespace):
        print(f"no knowledge namespace {args.namespace!r} at {store.storage}", file=sys.stderr)
        return 1
    print(f"dropped {args.namespace}")
    return 0


def _guarded(cmd: Any) -> Any:
    """A bad path or namespace name is a usage error with its message, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(cmd(args))
        except (FileNotFoundError, ValueError) as e:
            print(f"troupe: error: {e}", file=sys.stderr)
            return 2

    return run


def add_parser(sub: Any) -> None:
    kn = sub.add_parser("knowledge", help="knowledge namespaces (RAG): ingest, reindex, list, drop")
    kn_sub = kn.add_subparsers(dest="knowledge_command", required=True)

    def common(p: argparse.ArgumentParser, *, embedder: bool = False) -> None:
        p.add_argument("--lake", help="the lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
        p.add_argument("--location", help="the knowledge root itself (default: the team's knowledge.location, else <lake>/knowledge)")
        p.add_argument("--team", help="a team file: its knowledge settings and model profiles")
        p.add_argument("--json", action="store_true", help="print JSON (and no progress bar)")
        if embedder:
            p.add_argument("--embedder", help="default, none (BM25 only) or a model profile of the team (overrides the team's)")

    ingest = kn_sub.add_parser("ingest", help="read, chunk, embed and index files (text, Markdown, PDF) into a namespace")
    ingest.add_argument("namespace")
    ingest.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
    common(ingest, embedder=True)
    ingest.add_argument("--chunk-size", type=int, help="characters per chunk (default 1000)")
    ingest.add_argument("--overlap", type=int, help="characters shared by consecutive chunks (default 150)")
    ingest.add_argument("--ray", choices=["auto", "on", "off"], default="auto",
                        help=f"fan out as Ray tasks (auto: from {RAY_FILES} files or {RAY_BYTES >> 20} MB)")
    ingest.add_argument("--address", help="the Ray cluster to join with --ray (default: a running one, else a local Ray)")
    ingest.set_defaults(func=_guarded(_cmd_ingest))
    reindex = kn_sub.add_parser("reindex", help="rebuild a namespace's BM25 and vectors with the current embedder")
    reindex.add_argument("namespace")
    common(reindex, embedder=True)
    reindex.set_defaults(func=_guarded(_cmd_reindex))
    listing = kn_sub.add_parser("list", help="namespaces with documents, chunks and embedder (or one namespace's documents)")
    listing.add_argument("namespace", nargs="?")
    common(listing)
    listing.set_defaults(func=_guarded(_cmd_list))
    drop = kn_sub.add_parser("drop", help="delete a namespace's indexes")
    drop.add_argument("namespace")
    common(drop)
    drop.set_defaults(func=_guarded(_cmd_drop))


__all__ = ["add_parser"]
