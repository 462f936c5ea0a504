"""troupe knowledge ingest|list|reindex|drop through the CLI's main() (BM25 only: no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from troupe.runtime.cli.main import main


def test_ingest_list_reindex_drop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n" + "alpha beta gamma. " * 40)
    (docs / "b.txt").write_text("delta epsilon")
    lake = str(tmp_path / "lake")
    common = ["--lake", lake, "--embedder", "none"]
    assert main(["knowledge", "ingest", "kb", str(docs), *common, "--chunk-size", "200", "--overlap", "20",
                 "--ray", "off"]) == 0
    out, err = capsys.readouterr()
    assert "ingested kb:" in out and "2 files" in out and "BM25 only" in out
    assert "read" in err and "2/2 files" in err  # the progress bar
    assert main(["knowledge", "list", "--lake", lake, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["namespace"], row["documents"], row["embedder"]) == ("kb", 2, "none (BM25 only)")
    assert row["chunks"] > 2
    assert main(["knowledge", "list", "kb", "--lake", lake]) == 0
    assert "docs/b.txt" in capsys.readouterr().out
    assert main(["knowledge", "reindex", "kb", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["generation"] == 2
    assert main(["knowledge", "drop", "kb", "--lake", lake]) == 0
    assert main(["knowledge", "drop", "kb", "--lake", lake]) == 1
    assert main(["knowledge", "reindex", "kb", *common]) == 2
    assert "troupe knowledge ingest kb" in capsys.readouterr().err
    assert main(["knowledge", "ingest", "kb", str(tmp_path / "missing"), *common, "--ray", "off"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
