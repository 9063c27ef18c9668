"""Where a summary's text comes from: the file itself for text formats, else the extracted text
rebuilt from the stored chunk bodies; citations point into that text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memexfs.store import EdgeStore
from query.summary import document_text, format_summary, summarize
from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder, fill

pytestmark = pytest.mark.timeout(60)

NOTE = ("# Mitosis\n\nMitosis splits one cell into two identical cells.\n"
        "The chromosomes line up in metaphase before they separate.\n\n"
        "## Why it matters\n\nGrowth and repair of tissue depend on mitosis.\n")


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[Path, EdgeStore]]:
    root = tmp_path / "vault"
    (root / "Notes").mkdir(parents=True)
    (root / "Notes" / "mitosis.md").write_text(NOTE)
    store = EdgeStore(tmp_path / "idx", DIM)
    fill(store, [("Notes/mitosis.md", [NOTE]),
                 ("Scans/report.pdf", ["Quarterly report on cell growth. Revenue rose by",
                                       "Revenue rose by ten percent. Costs fell sharply."])],
         HashEncoder())
    yield root, store
    store.close()


def test_text_files_are_read_from_the_vault(vault: tuple[Path, EdgeStore]) -> None:
    root, store = vault
    text, origin = document_text(store, "Notes/mitosis.md", root)
    assert (text, origin) == (NOTE, "file")
    out = format_summary(summarize(text, "Notes/mitosis.md", HashEncoder()))
    lines = NOTE.splitlines()
    for row in out.splitlines():
        sentence, _, cite = row[2:].rpartition("  [")
        path, _, line = cite.rstrip("]").rpartition(":")
        assert path == "Notes/mitosis.md"
        assert sentence.split()[0] in lines[int(line) - 1]


def test_other_formats_use_the_extracted_text(vault: tuple[Path, EdgeStore]) -> None:
    root, store = vault
    text, origin = document_text(store, "Scans/report.pdf", root)
    assert origin == "extracted"
    assert text == ("Quarterly report on cell growth. Revenue rose by ten percent. "
                    "Costs fell sharply.")  # the chunks' overlap is merged
    assert document_text(store, "missing.txt", root) == ("", "extracted")
    (root / "link.md").symlink_to(root / "Notes" / "mitosis.md")
    assert document_text(store, "link.md", root) == ("", "extracted")  # never followed
