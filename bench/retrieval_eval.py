"""Retrieval quality of BM25, dense and hybrid search on CISI and personal-dev.

    nice -n 10 python -m bench.retrieval_eval [--encoder minilm] [--sets cisi,personal]

Metrics (one result per file): nDCG@10 with graded gain 2^g - 1, recall@10. CISI documents are
indexed as files ``cisi/<id>.txt`` (title + abstract, chunked like the pipeline does);
personal-dev goes through the real pipeline (extract -> fields -> chunk -> embed -> upsert) and its
queries through ``query.parse`` with their own ``today``. Every fusion variant runs on the same
index in one process. Prints a table; writes ``bench/results/retrieval_eval.json``.
Embeddings are cached in ``bench/results/cache/`` (keyed by the encoder's name and the text)
between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from query.engine import Mode, SearchEngine, Tuning
from query.parse import Query, parse

log = logging.getLogger("bench.retrieval_eval")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
K = 10


def eval_dir() -> Path:
    env = os.environ.get("MEMEXFS_EVAL_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "eval"


# ---- encoder cache ---------------------------------------------------------------------------
class CachedEncoder:
    """Wraps an encoder; remembers vectors by text hash in an .npz between runs."""

    def __init__(self, inner: Any, cache: Path) -> None:
        self.inner, self.cache = inner, cache
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self._mem: dict[str, np.ndarray] = {}
        if cache.exists():
            with np.load(cache) as data:
                self._mem = dict(zip(data["keys"].tolist(), data["vecs"], strict=True))
        self._dirty = False

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        new = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._mem}
        todo = sorted(new.items())
        if todo:
            vecs = self.inner.encode([t for _, t in todo])
            self._mem.update({k: v for (k, _), v in zip(todo, vecs, strict=True)})
            self._dirty = True
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._mem[k]
        return out

    def save(self) -> None:
        if self._dirty:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache.with_suffix(".tmp.npz")
            keys = sorted(self._mem)
            np.savez(tmp, keys=np.array(keys), vecs=np.stack([self._mem[k] for k in keys]))
            tmp.replace(self.cache)
            self._dirty = False


# ---- data sets -------------------------------------------------------------------------------
@dataclass
class EvalSet:
    name: str
    queries: list[tuple[str, Query]]
    qrels: dict[str, dict[str, int]]  # qid -> path -> grade


def _smart(path: Path) -> dict[str, dict[str, str]]:
    """SMART format: ``.I id`` records with ``.T``/``.A``/``.W``/``.X`` fields."""
    records: dict[str, dict[str, str]] = {}
    cur: dict[str, str] = {}
    tag = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\.([ITAWXB])\s*(.*)$", line)
        if m:
            tag = m[1]
            if tag == "I":
                cur = records.setdefault(m[2].strip(), {})
            continue
        cur[tag] = cur.get(tag, "") + line.strip() + "\n"
    return records


def index_cisi(store: Any, enc: Any) -> EvalSet:
    from memexfs.chunking import chunk_document
    from memexfs.schema import location_payload
    from memexfs.store import ChunkPoint

    base = eval_dir() / "cisi"
    docs = _smart(base / "CISI.ALL")
    max_tokens = min(200, enc.max_tokens - 16)
    todo: list[tuple[str, list[Any]]] = []
    for did, rec in docs.items():
        title = " ".join(rec.get("T", "").split())
        text = f"{title}\n\n{rec.get('W', '').strip()}"
        path = f"cisi/{did}.txt"
        todo.append((did, chunk_document(text, title=title, path=path,
                                         count_tokens=enc.count_tokens, max_tokens=max_tokens)))
    vecs = enc.encode([c.text for _, chunks in todo for c in chunks])
    row = 0
    for did, chunks in todo:
        path, fid = f"cisi/{did}.txt", f"cisi-{did}"
        points = []
        for c in chunks:
            payload = {**location_payload(path), "doc_type": "text", "title": chunks[0].text[:80],
                       "body": c.body, "encoder": enc.name}
            points.append(ChunkPoint(fid, c.index, vecs[row].tolist(), c.text, payload))
            row += 1
        store.put_chunks(fid, points)
    qrels: dict[str, dict[str, int]] = {}
    for line in (base / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            qrels.setdefault(parts[0], {})[f"cisi/{parts[1]}.txt"] = 1
    queries = [(qid, Query(text=" ".join(rec.get("W", "").split()), k=K, raw=qid))
               for qid, rec in _smart(base / "CISI.QRY").items() if qid in qrels]
    return EvalSet("cisi", queries, qrels)


def index_personal(store: Any, enc: Any) -> tuple[EvalSet, Callable[[SearchEngine], None]]:
    from memexfs.extract import Extractor
    from memexfs.pipeline import Pipeline
    from memexfs.vault import Vault

    base = eval_dir() / "personal-dev"
    corpus = base / "corpus"
    vault = Vault(corpus.resolve())  # read-only corpus: no state folder is created
    paths = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file())
    extractor = Extractor()
    try:
        status = Pipeline(vault, store, enc, extractor).index_paths(paths)
    finally:
        extractor.close()
    log.info("personal-dev: %s", {s: list(status.values()).count(s) for s in set(status.values())})
    qrels: dict[str, dict[str, int]] = {}
    for line in (base / "qrels.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    rows = [json.loads(x) for x in (base / "queries.jsonl").read_text().splitlines() if x.strip()]
    es = EvalSet("personal-dev", [], qrels)

    def make_queries(engine: SearchEngine) -> None:
        vendors = engine.known_vendors()
        es.queries = [(r["id"], replace(parse(r["query"], date.fromisoformat(r["today"]),
                                              vendors), k=K)) for r in rows]
    return es, make_queries


# ---- metrics ---------------------------------------------------------------------------------
def ndcg(ranked: list[str], grades: dict[str, int], k: int = K) -> float:
    dcg = sum((2 ** grades.get(p, 0) - 1) / math.log2(i + 2) for i, p in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: list[str], grades: dict[str, int], k: int = K) -> float:
    rel = {p for p, g in grades.items() if g > 0}
    return len(rel & set(ranked[:k])) / len(rel) if rel else 0.0


def run_config(engine: SearchEngine, es: EvalSet, mode: Mode) -> dict[str, Any]:
    per: dict[str, dict[str, float]] = {}
    empty = 0
    t0 = time.perf_counter()
    for qid, q in es.queries:
        res = engine.search(q, mode)
        empty += not res.hits
        ranked = [h.path for h in res.hits]
        per[qid] = {"ndcg@10": ndcg(ranked, es.qrels[qid]),
                    "recall@10": recall(ranked, es.qrels[qid])}
    n = max(1, len(per))
    return {
        "ndcg@10": sum(v["ndcg@10"] for v in per.values()) / n,
        "recall@10": sum(v["recall@10"] for v in per.values()) / n,
        "empty": empty, "queries": len(per),
        "ms_per_query": 1000 * (time.perf_counter() - t0) / n,
        "per_query": per,
    }


def configs(floor: float) -> Iterable[tuple[str, Mode, Tuning]]:
    """Each row: a label, a mode and its tuning. Floors are 0 except the shipped default row."""
    base = Tuning(floor=0.0, lexical_floor=0.0, rel_cosine=0.0, rel_fused=0.0)
    yield "bm25", "sparse", base
    yield "dense", "dense", base
    for a in (0.3, 0.4, 0.5, 0.6, 0.7):
        yield f"hybrid convex a={a}", "hybrid", replace(base, fusion="convex", alpha=a)
    yield "hybrid rrf k=60", "hybrid", replace(base, fusion="rrf", alpha=0.5)
    yield "hybrid rrf k=60 w=.6", "hybrid", replace(base, fusion="rrf", alpha=0.6)
    yield "hybrid dbsf", "hybrid", replace(base, fusion="dbsf", alpha=0.5)
    yield "hybrid store-rrf", "hybrid", replace(base, fusion="store-rrf")
    yield "hybrid store-dbsf", "hybrid", replace(base, fusion="store-dbsf")
    yield "hybrid no boosts", "hybrid", replace(base, boosts={})
    yield "hybrid DEFAULT (floor)", "hybrid", Tuning() if floor < 0 else Tuning(floor=floor)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--sets", default="cisi,personal")
    ap.add_argument("--floor", type=float, default=-1.0,
                    help="floor for the DEFAULT row (-1: the shipped Tuning default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "retrieval_eval.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from embed import load_encoder
    from memexfs.store import EdgeStore

    inner = load_encoder(args.encoder)
    # keyed by the encoder's own name, which changes whenever its vectors do
    enc = CachedEncoder(inner, RESULTS / "cache" / f"{inner.name}.npz")
    report: dict[str, Any] = {"encoder": enc.name, "k": K, "sets": {}}
    for name in args.sets.split(","):
        with tempfile.TemporaryDirectory(prefix="memexfs-eval-") as tmp:
            store = EdgeStore(tmp, enc.dim)
            t0 = time.perf_counter()
            make: Callable[[SearchEngine], None] | None = None
            if name == "cisi":
                es = index_cisi(store, enc)
            else:
                es, make = index_personal(store, enc)
            enc.save()
            log.info("%s: indexed %d chunks in %.1fs", name, store.count_chunks(),
                     time.perf_counter() - t0)
            rows = {}
            for label, mode, tuning in configs(args.floor):
                engine = SearchEngine(store, enc, tuning)
                if make is not None:
                    make(engine)
                rows[label] = run_config(engine, es, mode)
            enc.save()
            store.close()
        report["sets"][es.name] = rows
        print(f"\n{es.name} ({len(es.queries)} queries)")
        print(f"{'config':<26}{'nDCG@10':>9}{'R@10':>8}{'empty':>7}{'ms/q':>8}")
        for label, r in rows.items():
            print(f"{label:<26}{r['ndcg@10']:>9.4f}{r['recall@10']:>8.4f}{r['empty']:>7}"
                  f"{r['ms_per_query']:>8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
