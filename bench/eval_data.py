"""The evaluation collections as MemexFS sees them: documents as files, queries as folder names.

CISI and CACM (SMART format) become one ``<id>.txt`` file per document (title, authors, text; for
CACM also its keywords) in a vault of their own; personal-dev is used as it is. Queries keep their
fixed dev/test split from ``splits.json`` and become ``/q`` folder names (no ``/``, at most 255
bytes, cut at a word boundary), which is what a user of the mount would type.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME_MAX = 255


def eval_dir() -> Path:
    env = os.environ.get("MEMEXFS_EVAL_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "eval"


@dataclass(frozen=True)
class EvalQuery:
    qid: str
    name: str  # the /q folder name
    today: date
    split: str  # "dev" | "test"
    kind: str = ""  # personal-dev: semantic / keyword / filter / temporal


@dataclass
class Collection:
    name: str
    vault: Path  # a folder of files, indexed like any vault
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]  # qid -> vault-relative path -> grade


def smart_records(path: Path) -> dict[str, dict[str, str]]:
    """SMART format: ``.I id`` starts a record, ``.X`` (any capital) starts a field."""
    records: dict[str, dict[str, str]] = {}
    cur: dict[str, str] = {}
    tag = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\.([A-Z])\s*(.*)$", line)
        if m:
            tag = m[1]
            if tag == "I":
                cur = records.setdefault(str(int(m[2].split()[0])), {})
            elif m[2].strip():
                cur[tag] = cur.get(tag, "") + m[2].strip() + "\n"
            continue
        cur[tag] = cur.get(tag, "") + line.rstrip() + "\n"
    return records


def folder_name(text: str) -> str:
    """``text`` as one /q folder name: no ``/`` or control characters, <= 255 bytes."""
    words = " ".join(text.replace("/", " ").split()).split(" ")
    out = ""
    for w in words:
        cand = f"{out} {w}" if out else w
        if len(cand.encode()) > NAME_MAX:
            break
        out = cand
    return out


def _splits() -> dict[str, dict[str, list[str]]]:
    data = json.loads((eval_dir() / "splits.json").read_text())
    return {k: {s: [str(q) for q in v] for s, v in d.items()} for k, d in data.items()}


def _split_of(splits: dict[str, list[str]], qid: str) -> str | None:
    return next((s for s, ids in splits.items() if qid in ids), None)


def _write(vault: Path, did: str, parts: list[str]) -> None:
    body = "\n\n".join(p.strip() for p in parts if p and p.strip())
    (vault / f"{did}.txt").write_text(body + "\n", encoding="utf-8")


def classic(name: str, workdir: Path, today: date) -> Collection:
    """CISI or CACM written out as a vault of ``<id>.txt`` files."""
    base = eval_dir() / name
    docs_file, qry_file, rel_file = {
        "cisi": ("CISI.ALL", "CISI.QRY", "CISI.REL"),
        "cacm": ("cacm.all", "query.text", "qrels.text"),
    }[name]
    vault = workdir / name
    vault.mkdir(parents=True, exist_ok=True)
    for did, rec in smart_records(base / docs_file).items():
        title = " ".join(rec.get("T", "").split())
        authors = ", ".join(a.strip() for a in rec.get("A", "").splitlines() if a.strip())
        _write(vault, did, [title, authors, rec.get("W", ""), rec.get("K", "")])
    qrels: dict[str, dict[str, int]] = {}
    for line in (base / rel_file).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            qrels.setdefault(str(int(parts[0])), {})[f"{int(parts[1])}.txt"] = 1
    splits = _splits()[name]
    queries = []
    for qid, rec in smart_records(base / qry_file).items():
        split = _split_of(splits, qid)
        if qid in qrels and split is not None:
            queries.append(EvalQuery(qid, folder_name(rec.get("W", "")), today, split))
    return Collection(name, vault, queries, qrels)


def personal() -> Collection:
    base = eval_dir() / "personal-dev"
    qrels: dict[str, dict[str, int]] = {}
    for line in (base / "qrels.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip().isdigit():
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    splits = _splits()["personal-dev"]
    queries = []
    for line in (base / "queries.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        split = _split_of(splits, r["id"])
        if split is not None and r["id"] in qrels:
            queries.append(EvalQuery(r["id"], folder_name(r["query"]),
                                     date.fromisoformat(r["today"]), split, r.get("kind", "")))
    return Collection("personal-dev", base / "corpus", queries, qrels)
