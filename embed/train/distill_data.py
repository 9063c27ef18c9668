"""Unlabeled training text for distillation, from offline sources only.

STS-B *train* sentences, Python stdlib docstrings, Debian package descriptions and English man
pages. Never the STS-B dev/test splits or any retrieval eval corpus (those measure the result).
"""

from __future__ import annotations

import ast
import csv
import gzip
import logging
import random
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")
_ROFF_ESC = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&|^%e-]|\\s[-+]?\d")


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _split_long(text: str, max_words: int, rng: random.Random) -> Iterator[str]:
    """Cut paragraphs into pieces of a few to max_words words, so lengths vary like real input."""
    words = text.split()
    i = 0
    while i < len(words):
        n = rng.randint(8, max_words)
        piece = " ".join(words[i : i + n])
        if len(piece) >= 20:
            yield piece
        i += n


def read_stsb(path: Path) -> list[tuple[str, str, float]]:
    """(sentence1, sentence2, score) rows of an STS-B csv (tab-separated, extra columns ignored)."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for parts in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(parts) >= 7:
                rows.append((parts[5], parts[6], float(parts[4])))
    return rows


def stsb_train_sentences(eval_dir: Path) -> list[str]:
    rows = read_stsb(eval_dir / "stsb" / "sts-train.csv")
    return sorted({s for a, b, _ in rows for s in (a, b)})


def stdlib_docstrings(rng: random.Random, max_words: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    for py in sorted(root.rglob("*.py")):
        if "test" in py.parts or "site-packages" in py.parts:
            continue
        try:
            tree = ast.parse(py.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    for para in doc.split("\n\n"):
                        out.extend(_split_long(_clean(para), max_words, rng))
    return out


def debian_descriptions(status: Path = Path("/var/lib/dpkg/status")) -> list[str]:
    if not status.exists():
        return []
    out: list[str] = []
    cur: list[str] = []
    for line in status.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Description:"):
            cur = [line[len("Description:") :].strip()]
        elif cur and line.startswith(" "):
            cur.append("" if line.strip() == "." else line.strip())
        elif cur:
            out.extend(p for p in (_clean(x) for x in " ".join(cur).split("  ")) if len(p) >= 20)
            cur = []
    return out


def man_pages(rng: random.Random, max_words: int, limit: int = 4000) -> list[str]:
    """Prose paragraphs of English man pages (sections directly under /usr/share/man)."""
    files = sorted(Path("/usr/share/man").glob("man[1-8]/*.gz"))
    rng.shuffle(files)
    out: list[str] = []
    for path in files[:limit]:
        try:
            raw = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        except (OSError, EOFError):
            continue
        para: list[str] = []
        for line in raw.splitlines() + [".PP"]:
            if line.startswith((".", "'")):
                if para:
                    text = _clean(_ROFF_ESC.sub("", " ".join(para)))
                    out.extend(_split_long(text, max_words, rng))
                    para = []
                continue
            para.append(line)
    return out


def build_corpus(eval_dir: Path, seed: int = 0, max_words: int = 120) -> dict[str, list[str]]:
    """Texts per source; the trainer mixes sources with fixed weights."""
    rng = random.Random(seed)
    corpus = {
        "stsb_train": stsb_train_sentences(eval_dir),
        "stdlib": stdlib_docstrings(rng, max_words),
        "debian": debian_descriptions(),
        "man": man_pages(rng, max_words),
    }
    for k, v in corpus.items():
        log.info("distillation text %s: %d pieces", k, len(v))
    return corpus
