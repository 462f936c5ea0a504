"""Read the files to ingest: plain text and Markdown as they are, PDF through ``pypdf`` (the ``knowledge`` extra).

:func:`expand` turns the paths given to ``troupe knowledge ingest`` into files (folders recursively,
keeping the suffixes we read); :func:`load` reads one into a :class:`Document`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from troupe.runtime.knowledge.errors import KnowledgeBackendError

MARKDOWN = frozenset({".md", ".markdown", ".mdx"})
TEXT = frozenset({".txt", ".text", ".rst", ".log", ".csv", ".json", ".yaml", ".yml", ".toml", ".py", ".html", ""})
PDF = frozenset({".pdf"})
SUFFIXES = MARKDOWN | TEXT | PDF


class UnreadableDocumentError(ValueError):
    """A file that is not text (nor a PDF) or that its reader rejects."""


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    """How the document is named in results: the path as given (a file under a folder: relative to that folder's parent)."""
    text: str
    markdown: bool


def expand(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """``(file, name)`` for every file to read: files as given, folders walked (hidden entries and unknown suffixes skipped)."""
    out: list[tuple[Path, str]] = []
    for given in paths:
        p = Path(given).expanduser()
        if p.is_file():
            out.append((p, str(given)))
        elif p.is_dir():
            out.extend((f, str(Path(p.name) / f.relative_to(p))) for f in _walk(p))
        else:
            raise FileNotFoundError(f"no such file or folder: {given}")
    return out


def _walk(folder: Path) -> Iterable[Path]:
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and f.suffix.lower() in SUFFIXES and not any(part.startswith(".") for part in rel.parts):
            yield f


def load(path: Path, name: str | None = None) -> Document:
    """The document at ``path``; :class:`UnreadableDocumentError` for binary files, :class:`KnowledgeBackendError`
    for a PDF without ``pypdf``."""
    suffix = path.suffix.lower()
    source = name or str(path)
    if suffix in PDF:
        return Document(source, read_pdf(path), markdown=False)
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError(f"{source}: binary file (only text, Markdown and PDF are read)")
    return Document(source, data.decode("utf-8", errors="replace"), markdown=suffix in MARKDOWN)


def read_pdf(path: Path) -> str:
    """A PDF's text, page by page (pages separated by blank lines)."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise KnowledgeBackendError(f"{path}: reading PDF needs the 'pypdf' package: pip install "
                                    "'troupe-runtime[knowledge]' (or pip install pypdf)") from None
    try:
        reader = PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PdfReadError, ValueError, KeyError) as e:
        raise UnreadableDocumentError(f"{path}: not a readable PDF ({type(e).__name__}: {e})") from e


__all__ = ["Document", "UnreadableDocumentError", "expand", "load", "read_pdf"]
