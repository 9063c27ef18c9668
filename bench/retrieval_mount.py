"""Retrieval quality through a real mount: each query is ``ls -U MNT/q/<name>/``, as a user runs it.

    nice -n 10 python -m bench.retrieval_mount [--sets cisi,cacm,personal]

The collection (see :mod:`bench.eval_data`) is copied into a fresh vault, mounted with the default
encoder, indexed; then every query folder is listed and its entries (relative symlinks) resolved
to vault paths, in directory order. nDCG@10 per split beside the same numbers computed in-process
by ``bench.retrieval_eval`` shows that nothing between the engine and the user (grammar, caching,
permission filtering, name deduplication) costs quality. Writes
``bench/results/retrieval_mount.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from bench.eval_data import Collection, classic, personal
from bench.retrieval_eval import RESULTS, K, score_runs
from tests.mounting import mounted

log = logging.getLogger("bench.retrieval_mount")


def list_query(mnt: Path, name: str) -> list[str]:
    """Vault-relative paths of a query folder's entries, in ``ls -U`` order (top K)."""
    folder = mnt / "q" / name
    try:
        entries = [e for e in os.listdir(folder) if not e.startswith(".")]
    except OSError as exc:
        log.warning("q/%s: %s", name[:60], exc.strerror)
        return []
    out = []
    for e in entries[:K]:
        real = os.path.normpath(os.path.join(folder, os.readlink(folder / e)))
        out.append(os.path.relpath(real, mnt))
    return out


def run_dated(coll: Collection, work: Path) -> dict[str, Any]:
    """One mount per distinct ``today`` among the queries (``--today`` is a mount option)."""
    ranked: dict[str, list[str]] = {}
    for today in sorted({q.today for q in coll.queries}):
        sub = work / today.isoformat()
        sub.mkdir()
        vault = sub / "vault"
        shutil.copytree(coll.vault, vault)
        with mounted(vault, sub / "mnt", "--no-watch", "--today", today.isoformat(),
                     timeout=120) as m:
            m.wait_idle(timeout=3600)
            for q in coll.queries:
                if q.today == today:
                    ranked[q.qid] = list_query(m.mnt, q.name)
    return score_runs(coll, ranked)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="cisi,cacm,personal")
    ap.add_argument("--out", type=Path, default=RESULTS / "retrieval_mount.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report: dict[str, Any] = {}
    for name in args.sets.split(","):
        with tempfile.TemporaryDirectory(prefix="memexfs-evalmnt-") as tmp:
            work = Path(tmp)
            if name.startswith("personal"):
                coll = personal()
            else:
                coll = classic(name, work / "src", date.today())
            (work / "m").mkdir()
            report[coll.name] = run_dated(coll, work / "m")
        rows = report[coll.name]
        cells = "  ".join(f"{s} {r['ndcg@10']:.4f} ({r['empty']} empty)"
                          for s, r in sorted(rows.items()) if s != "per_query")
        print(f"{coll.name} through /q: {cells}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
