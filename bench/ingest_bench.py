"""Ingest benchmark: the indexing pipeline end to end through a real mount, against the raw encoder.

    .venv/bin/python bench/ingest_bench.py [--files 60] [--latency 10] [--encoder minilm]
                                           [--baseline 9cf76e3]

Measures, in one run on the same machine:
  * throughput: files/s, texts/s and KB/s of extracted text from the first copy into the mount to
    idle, against the encoder alone on exactly the chunk texts the pipeline embeds (measured before
    and after the mount run; their mean is the baseline). Goal: end to end >= 85% of raw.
  * close -> searchable: write one file through the mount, close it, poll its user.memex.status
    xattr until "indexed" (the chunks are in the store then; Qdrant Edge searches see upserts at
    once). Goal: p95 <= 2 s.
  * FUSE round trips while indexing vs idle: LOOKUP of a missing name (never cached by the kernel)
    and GETXATTR user.memex.status (never cached), p50/p99.

With ``--baseline REV`` the mount part runs a second time with ``memexfs/indexer.py`` as it was at
git revision REV (read with ``git show``, run from an overlay copy), so an improvement is a ratio
measured in the same run. Prints a table and writes bench/results/ingest_bench.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.mounting  # noqa: E402
from tests.mounting import EVAL_DIR, Mount, mounted  # noqa: E402

CORPUS = EVAL_DIR / "personal-dev" / "corpus"
RESULTS = REPO / "bench" / "results" / "ingest_bench.json"


def sample(n: int) -> list[Path]:
    """n text-bearing files across formats, spread over the corpus (deterministic)."""
    picks = sorted(p for p in CORPUS.rglob("*") if p.is_file() and "weird" not in p.parts
                   and p.suffix in (".md", ".txt", ".eml", ".pdf", ".docx", ".html", ".csv"))
    step = max(1, len(picks) // n)
    return picks[::step][:n]


def chunk_texts(files: list[Path], encoder: Any, work: Path) -> list[str]:
    """Exactly the texts the pipeline will embed for these files (same extractor and chunker)."""
    from memexfs.extract import Extractor
    from memexfs.pipeline import Pipeline
    from memexfs.store import EdgeStore
    from memexfs.vault import Vault

    root = work / "prep"
    for src in files:
        dst = root / src.relative_to(CORPUS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    vault = Vault.open(root)
    store = EdgeStore(vault.index_dir, encoder.dim)
    try:
        with Extractor() as ex:
            pipe = Pipeline(vault, store, encoder, ex)
            rels = [str(src.relative_to(CORPUS)) for src in files]
            return [t for rel in rels for t in pipe.prepare(rel).texts]
    finally:
        store.close()


def raw_encode(encoder: Any, texts: list[str]) -> float:
    """Seconds to encode the texts the way Pipeline.embed does (one call, sorted by length)."""
    t0 = time.perf_counter()
    encoder.encode(sorted(texts, key=len))
    return time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def probe(m: Mount, known: Path, n: int) -> tuple[float, float]:
    """One FUSE LOOKUP (missing name) and one GETXATTR, in ms."""
    t0 = time.perf_counter()
    try:
        os.stat(m.mnt / f".probe-missing-{n}")
    except FileNotFoundError:
        pass
    t1 = time.perf_counter()
    try:
        os.getxattr(known, "user.memex.status")
    except OSError:
        pass
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def mount_run(args: argparse.Namespace, files: list[Path], expected: int,
              work: Path) -> dict[str, Any]:
    """Throughput, FUSE latency and close->indexed through one fresh mount."""
    vault, mnt = work / "vault", work / "mnt"
    extra = ["--encoder", args.encoder] if args.encoder else []
    with mounted(vault, mnt, *extra) as m:
        m.wait_idle(timeout=300)
        (mnt / "seed.txt").write_text("a file to probe")
        m.wait_idle(timeout=120)
        known = mnt / "seed.txt"
        idle_lookup, idle_xattr = [], []
        for i in range(args.probes):
            a, b = probe(m, known, i)
            idle_lookup.append(a)
            idle_xattr.append(b)
            time.sleep(0.002)
        base = m.stats()

        # -- throughput (and FUSE latency while the indexer works)
        t0 = time.perf_counter()
        for src in files:
            dst = mnt / "in" / src.relative_to(CORPUS)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        copied = time.perf_counter() - t0
        busy_lookup, busy_xattr = [], []
        i = 0
        while True:
            st = m.stats()
            done = st["embedded_texts"] - base["embedded_texts"] >= expected
            if done and st["state"] == "idle" and not st["queued"]:
                break
            a, b = probe(m, known, i)
            busy_lookup.append(a)
            busy_xattr.append(b)
            i += 1
            time.sleep(0.005)
            if time.perf_counter() - t0 > args.timeout:
                raise TimeoutError(f"not idle after {args.timeout}s: {st}")
        e2e = time.perf_counter() - t0
        embedded = st["embedded_texts"] - base["embedded_texts"]
        encode_s = st.get("encode_seconds", float("nan")) - base.get("encode_seconds", 0.0)

        # -- close -> searchable
        lat = []
        for k in range(args.latency):
            path = mnt / "lat" / f"note-{k}.md"
            path.parent.mkdir(exist_ok=True)
            body = f"Latency probe {k}: " + " ".join(
                f"pelican{k} harbour{j} lantern" for j in range(60))
            t1 = time.perf_counter()
            path.write_text(body)  # open, write, close
            while True:
                try:
                    if os.getxattr(path, "user.memex.status") == b"indexed":
                        break
                except OSError:
                    pass
                if time.perf_counter() - t1 > 60:
                    raise TimeoutError(f"{path} not indexed after 60 s")
                time.sleep(0.01)
            lat.append(time.perf_counter() - t1)
            m.wait_idle(timeout=60)
        hits = (mnt / "q" / f"pelican{args.latency - 1} harbour lantern" /
                ".results").read_text()
        found = f"lat/note-{args.latency - 1}.md" in hits
    return {"e2e_s": e2e, "copy_s": copied, "embedded": embedded, "encode_s": encode_s,
            "lat": lat, "found": found,
            "idle_lookup": idle_lookup, "idle_xattr": idle_xattr,
            "busy_lookup": busy_lookup, "busy_xattr": busy_xattr}


@contextlib.contextmanager
def overlay(rev: str, root: Path) -> Any:
    """Run mounts from a copy of the tree whose memexfs/indexer.py is the one at ``rev``."""
    root.mkdir(parents=True)
    for name in ("mount", "query", "embed", "tests"):
        (root / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "memexfs", root / "memexfs")
    old = subprocess.run(["git", "show", f"{rev}:memexfs/indexer.py"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    (root / "memexfs" / "indexer.py").write_text(old)
    saved = tests.mounting.REPO
    tests.mounting.REPO = root  # the daemon runs `python -m memexfs.cli` from here
    try:
        yield root
    finally:
        tests.mounting.REPO = saved


def run(args: argparse.Namespace) -> dict[str, Any]:
    from embed import load_encoder

    files = sample(args.files)
    encoder = load_encoder(args.encoder)
    encoder.encode(["warm up the encoder"] * 4)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        texts = chunk_texts(files, encoder, work)
        text_kb = sum(len(t.encode()) for t in texts) / 1024
        file_kb = sum(f.stat().st_size for f in files) / 1024
        raw_before = raw_encode(encoder, texts)

        runs = {"current": mount_run(args, files, len(texts), work / "current")}
        raw_mid = raw_encode(encoder, texts)
        if args.baseline:
            with overlay(args.baseline, work / "overlay"):
                runs[f"baseline@{args.baseline}"] = mount_run(args, files, len(texts),
                                                              work / "base")
        raw_after = raw_encode(encoder, texts)

    raw_runs = [raw_before, raw_mid, raw_after]
    raw = sorted(raw_runs)[1]  # median: the machine is shared, single runs are noisy
    n = len(files)
    out: dict[str, Any] = {
        "encoder": encoder.name, "files": n, "file_kb": round(file_kb, 1), "texts": len(texts),
        "text_kb": round(text_kb, 1), "raw_encode_s": round(raw, 2),
        "raw_encode_runs_s": [round(x, 2) for x in raw_runs],
        "raw_files_per_s": round(n / raw, 2), "raw_text_kb_per_s": round(text_kb / raw, 1),
        "load_avg": os.getloadavg(), "cpus": os.cpu_count(), "runs": {},
    }
    for name, r in runs.items():
        e2e = r["e2e_s"]

        def dist(xs: list[float]) -> dict[str, float]:
            return {"p50": round(pct(xs, 50), 3), "p99": round(pct(xs, 99), 3), "n": len(xs)}

        out["runs"][name] = {
            "embedded_texts": r["embedded"], "copy_s": round(r["copy_s"], 2),
            "e2e_s": round(e2e, 2), "files_per_s": round(n / e2e, 2),
            "text_kb_per_s": round(text_kb / e2e, 1), "vs_raw": round(raw / e2e, 3),
            "daemon_encode_s": round(r["encode_s"], 2),
            "encoder_busy": round(r["encode_s"] / e2e, 3),
            "close_to_indexed_s": {"p50": round(pct(r["lat"], 50), 3),
                                   "p95": round(pct(r["lat"], 95), 3),
                                   "max": round(max(r["lat"]), 3), "n": len(r["lat"])},
            "searchable_in_q": r["found"],
            "fuse_ms": {"lookup_idle": dist(r["idle_lookup"]),
                        "lookup_indexing": dist(r["busy_lookup"]),
                        "getxattr_idle": dist(r["idle_xattr"]),
                        "getxattr_indexing": dist(r["busy_xattr"])},
        }
    return out


def table(r: dict[str, Any]) -> str:
    lines = [f"{r['files']} files, {r['texts']} chunk texts, {r['text_kb']} KB of text, "
             f"encoder {r['encoder']}, load average "
             + " ".join(f"{x:.1f}" for x in r["load_avg"]),
             f"raw encoder: {r['raw_encode_s']} s = {r['raw_files_per_s']} files/s, "
             f"{r['raw_text_kb_per_s']} KB/s (runs {r['raw_encode_runs_s']})", ""]
    names = list(r["runs"])
    rows: list[tuple[str, ...]] = [("", *names)]

    def row(label: str, fn: Any) -> None:
        rows.append((label, *(fn(r["runs"][n]) for n in names)))

    row("end to end s", lambda x: f"{x['e2e_s']}")
    row("files/s", lambda x: f"{x['files_per_s']}")
    row("text KB/s", lambda x: f"{x['text_kb_per_s']}")
    row("vs raw encoder (goal >=85%)", lambda x: f"{x['vs_raw']:.1%}")
    row("encoder busy (same process)", lambda x: f"{x['encoder_busy']:.1%}")
    row("texts embedded", lambda x: f"{x['embedded_texts']}")
    row("close->indexed p50 s", lambda x: f"{x['close_to_indexed_s']['p50']}")
    row("close->indexed p95 s (goal<=2)", lambda x: f"{x['close_to_indexed_s']['p95']}")
    row("found in /q", lambda x: f"{x['searchable_in_q']}")
    for key in ("lookup_idle", "lookup_indexing", "getxattr_idle", "getxattr_indexing"):
        row(f"{key} ms p50/p99", lambda x, k=key: f"{x['fuse_ms'][k]['p50']:.2f} / "
                                                   f"{x['fuse_ms'][k]['p99']:.2f}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=60)
    p.add_argument("--latency", type=int, default=10, help="close->indexed samples")
    p.add_argument("--probes", type=int, default=300, help="idle FUSE probes")
    p.add_argument("--encoder", default=None)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--baseline", metavar="REV",
                   help="also run with memexfs/indexer.py from this git revision")
    args = p.parse_args()
    r = run(args)
    print(table(r))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
