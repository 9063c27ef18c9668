"""Latency of query folders at 10k and 100k chunks: in-process engine and ``ls /q/...``.

    nice -n 10 python -m bench.query_bench [--sizes 10000,100000] [--repeat 40] [--no-mount]

What it builds: for each size, a vault whose index (``<vault>/.memexfs/index``, dim 384) is
filled *directly* with synthetic chunks — 10 per file, so 100k chunks = 10k files — and a small
real file per catalog entry (size/mtime recorded), so the mount's reconcile finds everything
unchanged and serves the synthetic index. Chunk vectors are the real encoder's vectors of ~300
topic phrases plus noise (queries made of those phrases land on a cluster, as real queries do);
bodies mix the topic words with Zipf-distributed filler words, so BM25 posting lists are
realistic; payloads carry kind/vendor/status/doc_day/amount like the field extractor's.

What it measures (milliseconds, p50/p95 over ``--repeat`` queries):

* in-process, on the store and the :class:`SearchEngine` the daemon uses:
  ``encode`` (the query embedding alone), ``search (vector given)`` (hybrid store search,
  grouping, fusion, floors — everything but the encoder), ``search cold`` (new text: encode +
  search), ``known_vendors`` (the catalog scan repeated after every index change);
* ``search after change``: the same text after ``invalidate()`` (what an index change does):
  the known-vendor scan + search, with the query vector cached;
* through a real mount (``--no-watch``), in this process with ``os.listdir``:
  ``ls warm`` (the same folder again: the per-generation listing cache),
  ``ls -l warm`` (listdir + lstat of every entry, as ``ls -l`` does),
  ``ls cold`` (a new query text each time: lookup -> parse -> encode -> search -> permission
  filter -> readdir), ``ls after change`` (the warm folder again after a small file was
  written and indexed: every cached listing is stale).

The index is left as the indexer leaves it (Qdrant Edge does not build HNSW by itself);
``--optimize`` runs the shard optimizer first (HNSW), to show what that would change.
``--background-index`` measures the store the daemon runs (``ProcessStore``): engine search
p50/p95/max before, *during* and after the background HNSW build (``memexfs.store.optimize``:
copy, builder process, swap), the swap itself, and what the build cost (copy, build, the
stall of its last step), all in one run.
Prints a table and writes ``bench/results/query_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DIM = 384
CHUNKS_PER_FILE = 10
TODAY = date(2024, 1, 15)

log = logging.getLogger("bench.query_bench")

# ---- synthetic corpus -------------------------------------------------------------------------
_SUBJECTS = [
    "kitchen renovation", "tax return", "car insurance", "dental care", "web hosting",
    "office supplies", "electricity", "internet service", "landscaping", "legal services",
    "school trip", "birthday party", "marathon training", "garden planting", "bank statement",
    "mortgage payment", "flight booking", "hotel reservation", "team meeting", "product launch",
    "quarterly report", "budget planning", "hiring plan", "code review", "server migration",
    "chemistry notes", "biology lecture", "history essay", "calculus homework", "piano lessons",
]
_ASPECTS = [
    "invoice", "receipt", "contract", "notes", "summary", "reminder", "schedule", "checklist",
    "proposal", "feedback",
]
_VENDORS = ["acme", "northwind", "greenleaf", "keystone", "orbit", "pinecrest", "sunrise",
            "brightline", "bluebird", "tidewater"]
_KINDS = {"invoice": "invoice", "receipt": "receipt", "contract": "contract"}


def _filler_vocab(n: int, rng: random.Random) -> list[str]:
    syll = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "ne", "qua", "bri", "sto",
            "mar", "fen", "gal", "hu", "jo", "ax", "el"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def topics() -> list[str]:
    return [f"{s} {a}" for s in _SUBJECTS for a in _ASPECTS]


def synthesize(vault: Path, n_chunks: int, encoder: Any, optimize: bool, seed: int = 7) -> dict:
    """Fill ``vault`` with ``n_chunks`` synthetic chunks (and their files); returns timings."""
    from memexfs.schema import FileRecord, location_payload
    from memexfs.store import ChunkPoint, EdgeStore
    from memexfs.vault import Vault, content_hash

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    vocab = _filler_vocab(4000, rng)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf
    phrases = topics()
    t0 = time.perf_counter()
    centroids = np.asarray(encoder.encode(phrases), dtype=np.float32)
    vault.mkdir(parents=True)
    v = Vault.open(vault)
    store = EdgeStore(v.index_dir, dim=DIM)
    n_files = max(1, n_chunks // CHUNKS_PER_FILE)
    folders = [f"{y}/{s.title().replace(' ', '')}" for y in (2022, 2023)
               for s in _SUBJECTS]
    for i in range(n_files):
        t = rng.randrange(len(phrases))
        subject, aspect = phrases[t].rsplit(" ", 1)
        folder = rng.choice(folders)
        path = f"{folder}/{subject.replace(' ', '-')}-{aspect}-{i:06d}.txt"
        fid = f"00000000-0000-4000-8000-{i:012d}"
        day = (date(2022, 1, 1) - date(1970, 1, 1)).days + rng.randrange(740)
        fields: dict[str, Any] = {"doc_day": day}
        if aspect in _KINDS:
            fields.update(kind=_KINDS[aspect], vendor=rng.choice(_VENDORS),
                          status=rng.choice(["paid", "unpaid", "overdue"]),
                          amount=round(rng.uniform(20, 5000), 2), currency="USD",
                          due_day=day + 30)
        else:
            fields["kind"] = "note"
        noise = nrng.normal(0, 0.045, size=(CHUNKS_PER_FILE, DIM)).astype(np.float32)
        vecs = centroids[t] + noise
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        bodies = []
        for _c in range(CHUNKS_PER_FILE):
            words = rng.choices(vocab, weights=weights, k=rng.randint(60, 110))
            for _ in range(3):
                words.insert(rng.randrange(len(words)), rng.choice(phrases[t].split()))
            bodies.append(" ".join(words))
        real = vault / path
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(f"{phrases[t]}\n{bodies[0]}\n")
        st = real.stat()
        base = {**location_payload(path), "doc_type": "text", "title": phrases[t],
                "content_hash": content_hash(real), "encoder": encoder.name, **fields}
        store.put_file(FileRecord(
            file_id=fid, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino,
            content_hash=base["content_hash"], doc_type="text", status="indexed",
            encoder=encoder.name, chunks=CHUNKS_PER_FILE, title=phrases[t], indexed_at=time.time(),
            fields=fields))
        store.put_chunks(fid, [
            ChunkPoint(fid, c, vecs[c].tolist(), f"{phrases[t]}\n{bodies[c]}",
                       {**base, "body": bodies[c], "chunk_hash": f"{fid}:{c}"})
            for c in range(CHUNKS_PER_FILE)])
    fill_s = time.perf_counter() - t0
    opt_s = 0.0
    if optimize:
        t1 = time.perf_counter()
        store._chunks.optimize()  # bench-only: what HNSW would change
        opt_s = time.perf_counter() - t1
    chunks = store.count_chunks()
    store.close()
    return {"files": n_files, "chunks": chunks, "fill_s": round(fill_s, 1),
            "optimize_s": round(opt_s, 1)}


# ---- measuring --------------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": round(pct(xs, 50), 2), "p95": round(pct(xs, 95), 2),
            "mean": round(statistics.fmean(xs), 2), "n": len(xs)}


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


class _Counter:
    def __init__(self) -> None:
        self.i = 0

    def next(self) -> int:
        self.i += 1
        return self.i


def query_texts(n: int, seed: int) -> list[str]:
    """Distinct query names: a topic phrase plus a word that makes the text new."""
    rng = random.Random(seed)
    extra = ["please", "latest", "older", "important", "draft", "final", "copy", "scan",
             "archive", "shared", "personal", "work", "family", "urgent", "review"]
    out: set[str] = set()
    phrases = topics()
    while len(out) < n:
        out.add(f"{rng.choice(phrases)} {rng.choice(extra)} {rng.choice(extra)}")
    return sorted(out)


class _Faceted:
    """The store plus the ``distinct(key)`` capability the engine uses when a store has it
    (a Qdrant facet over the keyword index); bench-only until ``EdgeStore`` grows it."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def distinct(self, key: str) -> list[Any]:
        import qdrant_edge as qe

        with self._store._lock:
            resp = self._store._chunks.facet(qe.FacetRequest(key, limit=100_000, exact=True))
        return [h.value for h in resp.hits]


def _optimize_copy(plain: Path, vault: Path) -> dict[str, Any]:
    """Copy an already synthesised vault and build HNSW in the copy (Qdrant's optimizer)."""
    from memexfs.store import EdgeStore
    from memexfs.vault import Vault

    shutil.copytree(plain, vault, symlinks=True)
    store = EdgeStore(Vault.open(vault).index_dir, dim=DIM)
    t = time.perf_counter()
    store._chunks.optimize()
    took = time.perf_counter() - t
    chunks = store.count_chunks()
    store.close()
    return {"copied_from": str(plain), "chunks": chunks, "optimize_s": round(took, 1)}


def in_process(vault: Path, encoder: Any, repeat: int) -> dict[str, Any]:
    from memexfs.store import EdgeStore
    from memexfs.vault import Vault
    from query.engine import SearchEngine
    from query.parse import parse

    store = EdgeStore(Vault.open(vault).index_dir, dim=DIM)
    try:
        engine = SearchEngine(store, encoder)
        vendors = engine.known_vendors()
        texts = query_texts(repeat * 2, seed=11)
        out: dict[str, Any] = {}
        def fresh_vendors(e: SearchEngine) -> frozenset[str]:
            e.invalidate()
            return e.known_vendors()

        out["known_vendors"] = summary(timed(lambda: fresh_vendors(engine),
                                             max(3, repeat // 8)))
        faceted = SearchEngine(_Faceted(store), encoder)  # type: ignore[arg-type]
        out["known_vendors (facet)"] = summary(timed(lambda: fresh_vendors(faceted),
                                                     max(3, repeat // 8)))
        it = iter(texts)
        out["encode"] = summary(timed(lambda: encoder.encode([next(it)]), repeat))
        fixed = parse(texts[0], TODAY, vendors)
        vec = encoder.encode([fixed.text])

        class _Given:  # the encoder with its answer already known: search cost alone
            name, dim = encoder.name, encoder.dim

            def encode(self, _texts: list[str]) -> np.ndarray:
                return vec

        given = SearchEngine(store, _Given())  # type: ignore[arg-type]
        given._vendors = vendors
        res = given.search(fixed)
        out["hits"] = len(res.hits)
        out["search (vector given)"] = summary(timed(lambda: given.search(fixed), repeat))
        it2 = iter(texts[repeat:])
        out["search cold"] = summary(timed(
            lambda: engine.search(parse(next(it2), TODAY, vendors)), repeat))
        again = parse(texts[repeat], TODAY, vendors)  # its vector is cached now

        def after_change() -> None:
            engine.invalidate()  # what an index change does (vendors are scanned again too)
            engine.search(parse(again.raw, TODAY, engine.known_vendors()))

        out["search after change"] = summary(timed(after_change, max(5, repeat // 4)))
        return out
    finally:
        store.close()


def background_index(vault: Path, encoder: Any, repeat: int) -> dict[str, Any]:
    """Engine search latency before, during and after a background HNSW build."""
    from memexfs.store.process import ProcessStore
    from memexfs.vault import Vault
    from query.engine import SearchEngine
    from query.parse import parse

    store = ProcessStore(Vault.open(vault).index_dir, DIM, background_index=False)
    try:
        texts = query_texts(repeat * 4, seed=31)
        probe = SearchEngine(store, encoder)
        vendors = probe.known_vendors()
        parsed = [parse(t, TODAY, vendors) for t in texts]
        vectors = dict(zip([p.text for p in parsed],
                           np.asarray(encoder.encode([p.text for p in parsed])), strict=True))

        class _Known:  # every query's vector computed up front: the search cost alone
            name, dim = encoder.name, encoder.dim

            def encode(self, batch: list[str]) -> np.ndarray:
                return np.stack([vectors[t] for t in batch])

        engine = SearchEngine(store, _Known())  # type: ignore[arg-type]
        engine._vendors = vendors
        state = {"i": 0}

        def one() -> float:
            q = parsed[state["i"] % len(parsed)]
            state["i"] += 1
            t = time.perf_counter()
            engine.search(q)
            return 1000 * (time.perf_counter() - t)

        def phase(until: Callable[[], bool]) -> dict[str, float]:
            """Searches until ``until()``; ``max_call`` includes the status calls, which
            wait like a search would (what a swap's last step costs a caller)."""
            xs: list[float] = []
            calls: list[float] = []
            while True:
                t = time.perf_counter()
                finished = until()
                calls.append(1000 * (time.perf_counter() - t))
                if finished:
                    break
                xs.append(one())
            return {**stats(xs), "max_call": round(max(calls + xs), 2)}

        def stats(xs: list[float]) -> dict[str, float]:
            return {**summary(xs), "max": round(max(xs), 2)} if xs else {"n": 0}

        out: dict[str, Any] = {"unindexed_before": store.index_status()["unindexed"]}
        out["before"] = stats([one() for _ in range(repeat)])
        t0 = time.perf_counter()
        store.start_index_build()
        out["during copy"] = phase(lambda: bool(store.index_status()["building"]))
        out["during build"] = phase(lambda: not store.index_status()["builder_running"])
        store.poll_index_build()
        out["during swap"] = phase(lambda: store.index_status()["builds"] >= 1)
        out["build_total_s"] = round(time.perf_counter() - t0, 1)
        status = store.index_status()
        out["unindexed_after"] = status["unindexed"]
        out["swap"] = status["last_build"]
        out["after"] = stats([one() for _ in range(repeat)])
        return out
    finally:
        store.close()


def through_mount(vault: Path, repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.mounting import mounted

    mnt = vault.parent / "mnt"
    out: dict[str, Any] = {}
    with mounted(vault, mnt, "--no-watch", "--today", TODAY.isoformat(), timeout=300) as m:
        t = time.perf_counter()
        m.wait_idle(timeout=600)
        out["reconcile_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        os.listdir(mnt / "q" / "warm up the encoder")
        out["first_query_s"] = round(time.perf_counter() - t, 1)
        texts = query_texts(repeat + 1, seed=23)
        warm = mnt / "q" / texts[0]
        out["hits"] = len(os.listdir(warm)) - 1
        out["ls warm"] = summary(timed(lambda: os.listdir(warm), repeat))

        def ls_l() -> None:
            for n in os.listdir(warm):
                os.lstat(warm / n)

        out["ls -l warm"] = summary(timed(ls_l, repeat))
        it = iter(texts[1:])
        out["ls cold"] = summary(timed(lambda: os.listdir(mnt / "q" / next(it)), repeat))
        # After an index change every listing is stale: the same folder is searched again.
        changed = []
        for i in range(max(5, repeat // 4)):
            (mnt / f"bench-note-{i}.txt").write_text(f"bench note {i}: nothing to see\n")
            m.wait_idle(timeout=120)
            changed.extend(timed(lambda: os.listdir(warm), 1))
        out["ls after change"] = summary(changed)
        if "Traceback" in m.log_text():
            out["daemon_errors"] = m.log_text()[-2000:]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--encoder", default=None, help="encoder name (default: the package's)")
    ap.add_argument("--optimize", action="store_true", help="build HNSW before measuring")
    ap.add_argument("--no-mount", action="store_true", help="in-process numbers only")
    ap.add_argument("--background-index", action="store_true",
                    help="search latency before/during/after a background HNSW build")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the synthetic vaults here (reused when present)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: bench/results/query_bench[-hnsw][-bg].json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from embed import load_encoder

    encoder = load_encoder(args.encoder)
    report: dict[str, Any] = {"encoder": encoder.name, "optimize": args.optimize,
                              "repeat": args.repeat, "sizes": {}}
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="memexfs-qbench-")
    work = args.workdir or Path(str(tmp))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            vault = work / f"{size}{'-hnsw' if args.optimize else ''}" / "vault"
            row: dict[str, Any] = {}
            plain = work / str(size) / "vault"
            if not (vault / ".memexfs").exists():
                if args.optimize and (plain / ".memexfs").exists():
                    log.info("optimizing a copy of %s", plain)
                    row["build"] = _optimize_copy(plain, vault)
                else:
                    log.info("synthesising %d chunks in %s", size, vault)
                    row["build"] = synthesize(vault, size, encoder, args.optimize)
                log.info("built: %s", row["build"])
            row["engine"] = in_process(vault, encoder, args.repeat)
            if args.background_index:
                row["background_index"] = background_index(vault, encoder, args.repeat)
            if not args.no_mount:
                row["mount"] = through_mount(vault, args.repeat)
            report["sizes"][str(size)] = row
            _print(size, row)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    tag = ("-hnsw" if args.optimize else "") + ("-bg" if args.background_index else "")
    out = args.out or RESULTS / f"query_bench{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


def _print(size: int, row: dict[str, Any]) -> None:
    print(f"\n{size} chunks (hits per query: {row['engine'].get('hits')})")
    print(f"{'measure':<26}{'p50 ms':>9}{'p95 ms':>9}{'mean':>9}{'n':>5}")
    for where in ("engine", "mount"):
        for label, s in row.get(where, {}).items():
            if isinstance(s, dict):
                print(f"{where + ': ' + label:<26}{s['p50']:>9.2f}{s['p95']:>9.2f}"
                      f"{s['mean']:>9.2f}{s['n']:>5}")
    extra = {k: v for k, v in row.get("mount", {}).items() if not isinstance(v, dict)}
    if extra:
        print("  " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    bg = row.get("background_index")
    if bg:
        print("\nbackground HNSW build: engine search (vector given), ms")
        print(f"{'phase':<26}{'p50':>9}{'p95':>9}{'max':>9}{'n':>6}{'max call':>10}")
        for label in ("before", "during copy", "during build", "during swap", "after"):
            s = bg[label]
            row_ = (f"{s['p50']:>9.2f}{s['p95']:>9.2f}{s['max']:>9.2f}" if s.get("n")
                    else f"{'-':>9}{'-':>9}{'-':>9}")
            mc = f"{s['max_call']:>10.2f}" if "max_call" in s else ""
            print(f"{label:<26}{row_}{s.get('n', 0):>6}{mc}")
        print(f"  unindexed {bg['unindexed_before']} -> {bg['unindexed_after']}, "
              f"total {bg['build_total_s']} s, swap {bg['swap']}")


if __name__ == "__main__":
    raise SystemExit(main())
