"""``topics/``, ``backlinks/``, ``bridges/``, ``connect/`` and ``summary/`` through a real mount
with the real encoder (issue 11), on a small student's vault: study notes in three subjects with
wiki links between some, an e-mail thread, invoices, and one private (0600) note that another
user must never see in any of these folders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_permissions_q import CHILD_PYTHON, OTHER_GID, OTHER_UID, as_other
from tests.mounting import REPO, Mount, mounted, unmount

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

NOTES = {
    "History/french-revolution.md": """# The French Revolution

The French Revolution began in 1789 when the Estates-General met at Versailles.
The storming of the Bastille on 14 July became the symbol of the revolution.

## Causes

Royal debt from foreign wars and a bad harvest raised the price of bread in Paris.
The nobility and clergy paid almost no taxes while peasants carried the burden.
""",
    "History/napoleon.md": """# Napoleon Bonaparte

Napoleon rose to power after the French Revolution, in the coup of 1799.
He crowned himself emperor in 1804 and reformed French law with the Civil Code.
See [[french-revolution]] for what came before him.
""",
    "History/industrial-revolution.md": """# The Industrial Revolution

The industrial revolution began in Britain with steam engines and textile mills.
Factories drew workers from the countryside into crowded cities like Manchester.
It followed the political upheaval of the [[french-revolution]] by a few decades.
""",
    "History/cold-war.md": """# The Cold War

After 1945 the United States and the Soviet Union competed for global influence.
The Berlin Wall divided the city from 1961 until it fell in 1989.
""",
    "Biology/cell-biology.md": """# Cells

The cell is the basic unit of life; every organism is made of one or more cells.
The nucleus holds the DNA and the mitochondria produce energy as ATP.
""",
    "Biology/photosynthesis.md": """# Photosynthesis

Plants turn sunlight, water and carbon dioxide into glucose and oxygen.
Chlorophyll in the chloroplasts absorbs red and blue light.
Like respiration in [[cell-biology]], it moves energy through ATP.
""",
    "Biology/genetics.md": """# Genetics

Genes are stretches of DNA that code for proteins.
Mendel's pea experiments showed that traits are inherited as dominant or recessive alleles.
Mutations in DNA change the proteins a [[cell-biology|cell]] makes.
""",
    "Biology/evolution.md": """# Evolution

Darwin described natural selection: organisms better suited to their environment survive.
Over many generations, species change and new species arise from common ancestors.
""",
    "Economics/inflation.md": """# Inflation

Inflation is the general rise of prices over time, measured by the consumer price index.
Central banks raise interest rates to slow inflation down.
""",
    "Economics/supply-demand.md": """# Supply and demand

When demand for bread rises and supply stays fixed, the price of bread goes up.
Markets settle where the quantity supplied equals the quantity demanded.
Price rises feed [[inflation]] when they spread across the economy.
""",
    "Economics/taxation.md": """# Taxation

Governments raise revenue through income tax, sales tax and tariffs.
A regressive tax takes a larger share from the poor than from the rich.
""",
    "Economics/bread-prices.md": """# Bread prices in 1789

In 1789 a bad harvest doubled the price of bread in Paris, and hungry crowds blamed the king.
Demand for bread hardly falls when its price rises: a classic case of inelastic demand.
""",
    "Economics/trade.md": """# International trade

Countries gain from trade by specialising in what they produce at lower cost.
Tariffs on imports protect local industry but raise prices for consumers.
""",
}
MAILS = {
    "Mail/study-group.eml": """Message-ID: <grp1@example.org>
From: Ana <ana@example.org>
To: Ben <ben@example.org>
Subject: Study group on Thursday
Date: Mon, 8 Jan 2024 10:00:00 +0000

Shall we meet on Thursday to revise the French Revolution chapter for the history exam?
""",
    "Mail/re-study-group.eml": """Message-ID: <grp2@example.org>
In-Reply-To: <grp1@example.org>
References: <grp1@example.org>
From: Ben <ben@example.org>
To: Ana <ana@example.org>
Subject: Re: Study group on Thursday
Date: Mon, 8 Jan 2024 12:00:00 +0000

Thursday works; I will bring my notes on the causes of the revolution.
""",
}
INVOICES = {
    f"Invoices/invoice-{n}.txt": f"""INVOICE {n}
Vendor: Campus Books Ltd
Date: 2024-01-{10 + n}
Item: textbook, {title}
Amount due: {20 + 5 * n}.00 EUR
Payment terms: 30 days. Thank you for your purchase.
""" for n, title in ((1, "European history"), (2, "Molecular biology"), (3, "Microeconomics"))
}
SECRET = "History/secret-diary.md"
SECRET_TEXT = """# Private diary

I keep thinking about the French Revolution and the price of bread in 1789.
Nobody else should read this; it links [[french-revolution]] for my own revision.
"""
ALL = {**NOTES, **MAILS, **INVOICES}


@pytest.fixture(scope="module")
def kmount() -> Iterator[Mount]:
    base = Path(tempfile.mkdtemp(prefix="memexfs-know-"))
    base.chmod(0o755)  # the other user must reach the mountpoint
    vault = base / "vault"
    for rel, text in {**ALL, SECRET: SECRET_TEXT}.items():
        p = vault / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.parent.chmod(0o755)
        p.write_text(text)
        p.chmod(0o600 if rel == SECRET else 0o644)
    vault.chmod(0o755)
    try:
        with mounted(vault, base / "mnt", "--allow-other", "--no-watch") as m:
            m.wait_idle(timeout=240)
            yield m
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _links(folder: Path) -> list[str]:
    """Vault paths of the symlinks in ``folder``, in listing order (``ls -U``)."""
    root = folder
    while root.name not in ("topics", "backlinks", "bridges", "connect"):
        root = root.parent
    out = []
    for name in os.listdir(folder):
        p = folder / name
        if p.is_symlink():
            real = os.path.normpath(os.path.join(folder, os.readlink(p)))
            out.append(os.path.relpath(real, root.parent))
    return out


def _topic_files(m: Mount) -> dict[str, list[Path]]:
    """vault path -> every topics/ folder whose listing holds a link to it."""
    seen: dict[str, list[Path]] = {}
    for folder, dirs, _files in os.walk(m.mnt / "topics"):
        for path in _links(Path(folder)):
            seen.setdefault(path, []).append(Path(folder))
        dirs.sort()
    return seen


def test_every_note_is_in_exactly_one_topic(kmount: Mount) -> None:
    tops = os.listdir(kmount.mnt / "topics")
    assert tops, "topics/ is empty"
    assert "topics" in os.listdir(kmount.mnt)
    seen = _topic_files(kmount)
    for rel in ALL:
        assert len(seen.get(rel, [])) == 1, (rel, seen.get(rel))
    assert all(os.path.exists(kmount.mnt / p) for p in seen), "a topic link dangles"


def test_topic_files_are_readable_and_describe_the_folder(kmount: Mount) -> None:
    for name in os.listdir(kmount.mnt / "topics"):
        if name == "unsorted":
            continue
        text = (kmount.mnt / "topics" / name / ".topic").read_text()
        assert f"topic: {name}" in text
        assert re.search(r"^size: [1-9]", text, re.M), text
        assert "keywords: " in text
        assert "summary:" in text, text  # sentences cited from the topic's central files
        assert ".topic" in os.listdir(kmount.mnt / "topics" / name)


def test_subjects_mostly_share_topics(kmount: Mount) -> None:
    seen = _topic_files(kmount)
    for subject in ("History", "Biology", "Economics"):
        homes = Counter(str(seen[p][0]) for p in NOTES if p.startswith(subject))
        assert homes.most_common(1)[0][1] >= 2, (subject, homes)


def test_backlinks_list_the_linking_notes(kmount: Mount) -> None:
    folder = kmount.mnt / "backlinks" / "History" / "french-revolution.md"
    got = set(_links(folder))
    assert {"History/napoleon.md", "History/industrial-revolution.md", SECRET} <= got
    assert "History/cold-war.md" not in got
    rows = (folder / ".results").read_text()
    assert "wiki link at line" in rows
    assert set(_links(kmount.mnt / "backlinks" / "Mail" / "study-group.eml")) == {
        "Mail/re-study-group.eml"}
    # folders browse the vault
    assert "History" in os.listdir(kmount.mnt / "backlinks")


LINKED = {("History/napoleon.md", "History/french-revolution.md"),
          ("History/industrial-revolution.md", "History/french-revolution.md"),
          ("Biology/photosynthesis.md", "Biology/cell-biology.md"),
          ("Biology/genetics.md", "Biology/cell-biology.md"),
          ("Economics/supply-demand.md", "Economics/inflation.md"),
          (SECRET, "History/french-revolution.md")}


def test_bridges_skip_linked_and_same_folder(kmount: Mount) -> None:
    total = 0
    for rel in ("History/french-revolution.md", "Economics/bread-prices.md",
                "Economics/supply-demand.md", "Biology/cell-biology.md"):
        folder = kmount.mnt / "bridges" / rel
        found = _links(folder)
        total += len(found)
        for other in found:
            assert other.split("/")[0] != rel.split("/")[0], (rel, other)
            assert (rel, other) not in LINKED
            assert (other, rel) not in LINKED
        rows = [r for r in (folder / ".results").read_text().splitlines()
                if not r.startswith("#")]
        assert len(rows) == len(found)
        assert all("here: " in r and "| there: " in r for r in rows), rows
    assert total > 0, "no bridges at all"


def test_connect_two_subjects(kmount: Mount) -> None:
    folder = kmount.mnt / "connect" / "French revolution" / "price of bread"
    found = _links(folder)
    assert found, (folder / ".results").read_text()
    assert set(found) <= {*ALL, SECRET}
    assert {"Economics/bread-prices.md", "History/french-revolution.md"} & set(found[:3]), found
    assert os.listdir(kmount.mnt / "connect") == []


def test_summary_sentences_are_verbatim_and_cited(kmount: Mount) -> None:
    rel = "History/french-revolution.md"
    text = (kmount.mnt / "summary" / rel).read_text()
    lines = text.splitlines()
    assert lines, "empty summary"
    source = NOTES[rel]
    flat = " ".join(source.split())
    rows = source.splitlines()
    for line in lines:
        m = re.fullmatch(r"- (.+)  \[(.+):(\d+)\]", line)
        assert m, line
        sentence, path, no = m[1], m[2], int(m[3])
        assert path == rel
        assert sentence in flat, sentence
        assert sentence.split()[0] in rows[no - 1]
    assert os.stat(kmount.mnt / "summary" / rel).st_size == len(text.encode())
    assert "french-revolution.md" in os.listdir(kmount.mnt / "summary" / "History")


def test_other_user_cannot_see_a_private_file(kmount: Mount) -> None:
    seen = _topic_files(kmount)  # root fills the kernel's caches first
    assert SECRET in seen
    home = seen[SECRET][0]
    got = as_other(home, os.path.basename(SECRET))
    assert "secret-diary.md" not in got["names"], got
    assert got["probes"]["secret-diary.md"] == "ENOENT"
    proc = subprocess.run([CHILD_PYTHON, "-c", "import sys; print(open(sys.argv[1]).read())",
                           str(home / ".topic")], capture_output=True, text=True, timeout=60,
                          user=OTHER_UID, group=OTHER_GID, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "keywords: " in proc.stdout
    assert "secret-diary" not in proc.stdout
    assert "secret-diary" in (home / ".topic").read_text()  # root's view names it
    back = kmount.mnt / "backlinks" / "History" / "french-revolution.md"
    assert "secret-diary.md" in os.listdir(back)
    got = as_other(back)
    assert "error" not in got, got
    assert "secret-diary.md" not in got["names"]
    assert "secret-diary" not in got["results"]
    assert "napoleon.md" in got["names"]
    bridge = kmount.mnt / "bridges" / "Economics" / "bread-prices.md"
    assert "secret-diary.md" in os.listdir(bridge)
    got = as_other(bridge)
    assert "secret-diary" not in str(got), got
    assert got["names"], got  # the readable bridges are still there
    hidden = as_other(kmount.mnt / "summary" / "History", "secret-diary.md")
    assert hidden["probes"]["secret-diary.md"] in ("EACCES", "ENOENT"), hidden


def test_graph_cli_writes_a_page(kmount: Mount, tmp_path: Path) -> None:
    """Last: the CLI opens the vault offline, so the mount goes first."""
    unmount(kmount)
    (kmount.vault / ".memexfs" / "topics.json").stat()  # the model was persisted...
    assert (kmount.vault / ".memexfs" / "topics.json").stat().st_mode & 0o777 == 0o600
    out = tmp_path / "graph.html"
    proc = subprocess.run([sys.executable, "-m", "memexfs.cli_knowledge", "graph",
                           str(kmount.vault), "-o", str(out), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html") or "<html" in page[:200]
    assert "french-revolution.md" in page
    assert '"nodes": ' in proc.stdout
