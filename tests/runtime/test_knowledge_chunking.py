"""Chunking with overlap (plain and Markdown-aware), and the file loaders."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from troupe.runtime.knowledge.chunking import chunk_text, sections, split
from troupe.runtime.knowledge.errors import KnowledgeBackendError
from troupe.runtime.knowledge.loaders import UnreadableDocumentError, expand, load


def test_split_bounds_size_overlaps_and_covers_the_text() -> None:
    words = [f"w{i}" for i in range(400)]
    text = " ".join(words)
    chunks = split(text, size=200, overlap=50)
    assert all(len(c.text) <= 200 for c in chunks)
    assert len(chunks) > 5
    seen = " ".join(c.text for c in chunks).split()
    assert set(seen) == set(words)  # nothing lost
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.start + len(a.text)  # consecutive chunks overlap
        assert text[b.start:].startswith(b.text)  # offsets point at the chunk
        assert not b.text.startswith(("0", "1", "2", "3")), "cut inside a word"


def test_split_prefers_paragraph_and_sentence_boundaries() -> None:
    text = ("First paragraph sentence one. " * 5).strip() + "\n\n" + ("Second paragraph goes on. " * 5).strip()
    chunks = split(text, size=190, overlap=20)
    assert chunks[0].text.endswith(".")
    assert chunks[0].text.startswith("First")


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        split("abc", size=10, overlap=10)


def test_markdown_sections_carry_their_heading_path_and_never_mix() -> None:
    md = ("intro text\n\n# Install\nuse pip\n\n## From PyPI\npip install troupe\n\n```\n# not a heading\n```\n"
          "# Usage\nrun it\n")
    assert [h for h, _, _ in sections(md)] == ["", "Install", "Install > From PyPI", "Usage"]
    chunks = chunk_text(md, size=200, overlap=20, markdown=True)
    assert [(c.heading, c.text.splitlines()[0]) for c in chunks] == [
        ("", "intro text"), ("Install", "# Install"), ("Install > From PyPI", "## From PyPI"), ("Usage", "# Usage")]
    assert "# not a heading" in chunks[2].text


def test_loaders_read_text_markdown_and_walk_folders(tmp_path: Path) -> None:
    (tmp_path / "docs" / ".hidden").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\nalpha")
    (tmp_path / "docs" / "b.txt").write_text("beta")
    (tmp_path / "docs" / "c.bin").write_bytes(b"\x00\x01")
    (tmp_path / "docs" / ".hidden" / "d.txt").write_text("secret")
    files = expand([tmp_path / "docs"])
    assert [name for _, name in files] == ["docs/a.md", "docs/b.txt"]
    doc = load(*files[0])
    assert doc.markdown and doc.text == "# A\nalpha" and doc.source == "docs/a.md"
    with pytest.raises(UnreadableDocumentError, match="binary"):
        load(tmp_path / "docs" / "c.bin")
    with pytest.raises(FileNotFoundError, match="nope"):
        expand([tmp_path / "nope"])


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica (built by hand: no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(tiny_pdf("Hello knowledge base"))
    doc = load(path, "manual.pdf")
    assert (doc.source, doc.text, doc.markdown) == ("manual.pdf", "Hello knowledge base", False)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(UnreadableDocumentError, match="broken.pdf"):
        load(tmp_path / "broken.pdf")


def test_pdf_without_pypdf_is_a_diagnostic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf now raises ImportError
    path = tmp_path / "manual.pdf"
    path.write_bytes(tiny_pdf("x"))
    with pytest.raises(KnowledgeBackendError, match=r"troupe-runtime\[knowledge\]"):
        load(path)
