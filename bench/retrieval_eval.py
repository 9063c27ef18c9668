"""Retrieval quality on CISI, CACM and personal-dev: MemexFS beside its peers, dev and test.

    nice -n 10 python -m bench.retrieval_eval [--encoder ternary] [--sets cisi,cacm,personal]
                                              [--explore] [--no-peers]

Each collection is a folder of files indexed through the real pipeline (extract -> fields ->
chunk -> embed -> upsert; :mod:`bench.eval_data` writes CISI and CACM out as ``<id>.txt``), and
each query is its ``/q`` folder name, parsed by the grammar with its own ``today``, exactly what
the mount does (``bench/retrieval_mount.py`` measures through a real mount). The peers
(:mod:`bench.eval_peers`: bm25s BM25 and fp32 all-MiniLM-L6-v2) rank the same extracted text in
the same run. Metrics, one result per file: nDCG@10 (gain 2^g - 1) and recall@10, per split of
``splits.json`` (choose on ``dev``, report ``test``) and per query kind for personal-dev.
Prints a table; writes ``bench/results/retrieval_eval.json``. Embeddings are cached in
``bench/results/cache/`` (keyed by the encoder's name and the text) between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bench.eval_data import Collection, EvalQuery, classic, personal
from bench.eval_peers import BM25Peer, DensePeer, file_texts
from memexfs.errors import MemexError
from query.engine import Mode, SearchEngine, Tuning
from query.parse import Query, parse

log = logging.getLogger("bench.retrieval_eval")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
K = 10


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


def index_collection(coll: Collection, store: Any, enc: Any) -> list[str]:
    """Every file of ``coll.vault`` through the real pipeline (extract -> fields -> chunk ->
    embed -> upsert); returns the vault-relative paths."""
    from memexfs.extract import Extractor
    from memexfs.pipeline import Pipeline
    from memexfs.vault import Vault

    root = coll.vault.resolve()
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    extractor = Extractor()
    try:
        pipe = Pipeline(Vault(root), store, enc, extractor)  # no state folder is created
        status: dict[str, str] = {}
        for i in range(0, len(paths), 512):
            status.update(pipe.index_paths(paths[i:i + 512]))
    finally:
        extractor.close()
    log.info("%s: %s", coll.name, {s: list(status.values()).count(s)
                                   for s in sorted(set(status.values()))})
    return paths


def index_personal(store: Any, enc: Any) -> tuple[EvalSet, Callable[[SearchEngine], None]]:
    """personal-dev indexed, and a hook that parses its queries with the engine's vendors."""
    coll = personal()
    index_collection(coll, store, enc)
    es = EvalSet("personal-dev", [], coll.qrels)

    def make_queries(engine: SearchEngine) -> None:
        vendors = engine.known_vendors()
        es.queries = [(q.qid, replace(parse(q.name, q.today, vendors), k=K))
                      for q in coll.queries]
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


def score_runs(coll: Collection, ranked: dict[str, list[str]]) -> dict[str, Any]:
    """Mean nDCG@10 / recall@10 per split (and per query kind), from qid -> ranked paths."""
    out: dict[str, Any] = {}
    groups: dict[str, list[EvalQuery]] = {}
    for q in coll.queries:
        groups.setdefault(q.split, []).append(q)
        if q.kind:
            groups.setdefault(f"{q.split}:{q.kind}", []).append(q)
    for label, qs in sorted(groups.items()):
        nd = [ndcg(ranked.get(q.qid, []), coll.qrels[q.qid]) for q in qs]
        rc = [recall(ranked.get(q.qid, []), coll.qrels[q.qid]) for q in qs]
        out[label] = {"ndcg@10": sum(nd) / len(nd), "recall@10": sum(rc) / len(rc),
                      "empty": sum(not ranked.get(q.qid) for q in qs), "queries": len(qs)}
    out["per_query"] = {q.qid: ndcg(ranked.get(q.qid, []), coll.qrels[q.qid])
                        for q in coll.queries}
    return out


def run_engine(engine: SearchEngine, coll: Collection, mode: Mode) -> dict[str, list[str]]:
    """Each query as its /q folder name through the grammar and the engine, top K files."""
    vendors = engine.known_vendors()
    ranked: dict[str, list[str]] = {}
    for q in coll.queries:
        try:
            parsed = parse(q.name, q.today, vendors)
        except MemexError as exc:  # EINVAL through the mount: an empty folder for the user
            log.warning("%s %s: %s", coll.name, q.qid, exc)
            ranked[q.qid] = []
            continue
        ranked[q.qid] = [h.path for h in engine.search(parsed, mode).hits][:K]
    return ranked


def configs(floor: float, explore: bool) -> Iterable[tuple[str, Mode, Tuning]]:
    """Each row: a label, a mode and its tuning. Floors are 0 except the shipped default row."""
    base = Tuning(floor=0.0, lexical_floor=0.0, rel_cosine=0.0, rel_fused=0.0)
    yield "memexfs bm25", "sparse", base
    yield "memexfs dense", "dense", base
    if explore:
        for a in (0.3, 0.5, 0.7):
            yield f"hybrid convex a={a}", "hybrid", replace(base, fusion="convex", alpha=a)
        yield "hybrid rrf k=60", "hybrid", replace(base, fusion="rrf", alpha=0.5)
        yield "hybrid dbsf", "hybrid", replace(base, fusion="dbsf", alpha=0.5)
        yield "hybrid no boosts", "hybrid", replace(base, boosts={})
    yield "MEMEXFS /q (default)", "hybrid", Tuning() if floor < 0 else Tuning(floor=floor)


def _print(name: str, rows: dict[str, dict[str, Any]]) -> None:
    splits = sorted({k for r in rows.values() for k in r if k != "per_query"},
                    key=lambda s: (":" in s, s))
    print(f"\n{name}: nDCG@10 (empty folders)")
    print(f"{'system':<28}" + "".join(f"{s:>16}" for s in splits))
    for label, r in rows.items():
        cells = "".join(f"{r[s]['ndcg@10']:>11.4f} ({r[s]['empty']:>2})" for s in splits)
        print(f"{label:<28}{cells}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="ternary")
    ap.add_argument("--sets", default="cisi,cacm,personal")
    ap.add_argument("--floor", type=float, default=-1.0,
                    help="floor for the default row (-1: the shipped Tuning default)")
    ap.add_argument("--explore", action="store_true", help="also the fusion variants")
    ap.add_argument("--no-peers", action="store_true")
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
            coll = personal() if name.startswith("personal") else classic(
                name, Path(tmp) / "vault", date.today())
            store = EdgeStore(Path(tmp) / "index", enc.dim)
            t0 = time.perf_counter()
            paths = index_collection(coll, store, enc)
            enc.save()
            log.info("%s: indexed %d files, %d chunks in %.1fs", coll.name, len(paths),
                     store.count_chunks(), time.perf_counter() - t0)
            rows: dict[str, dict[str, Any]] = {}
            if not args.no_peers:
                texts = file_texts(coll.vault, paths)
                bm25 = BM25Peer(texts)
                rows["peer BM25 (bm25s)"] = score_runs(
                    coll, {q.qid: bm25.rank(q.name, K) for q in coll.queries})
                dense = DensePeer(texts, RESULTS / "cache" / f"peer-minilm-{coll.name}.npz")
                rows["peer dense MiniLM fp32"] = score_runs(
                    coll, {q.qid: dense.rank(q.name, K) for q in coll.queries})
            for label, mode, tuning in configs(args.floor, args.explore):
                engine = SearchEngine(store, enc, tuning)
                rows[label] = score_runs(coll, run_engine(engine, coll, mode))
            enc.save()
            store.close()
        report["sets"][coll.name] = rows
        _print(coll.name, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
