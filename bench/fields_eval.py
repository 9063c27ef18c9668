"""Accuracy of structured-field extraction against the personal-dev ground truth.

The metadata is used only to *score* the rules in memexfs.fields, never to produce values.
Prints a table and writes bench/results/fields_eval.json.

    .venv/bin/python bench/fields_eval.py [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memexfs.extract import extract_in_process  # noqa: E402
from memexfs.fields import extract_fields  # noqa: E402

log = logging.getLogger("fields_eval")

SNAPSHOT = "2024-01-15"


def eval_dir() -> Path:
    env = os.environ.get("MEMEXFS_EVAL_DIR")
    return Path(env) if env else REPO.parent / "shared" / "eval"


def _status_truth(s: str) -> str:
    return {"PAID": "paid", "UNPAID": "unpaid", "OVERDUE": "overdue"}[s]


def _unpaid_ok(truth: dict[str, Any], got: dict[str, object]) -> bool:
    """The query layer's view: unpaid = UNPAID or OVERDUE; overdue = stated or unpaid past due."""
    t_unpaid = truth["status"] in ("UNPAID", "OVERDUE")
    t_overdue = truth["status"] == "OVERDUE" or (t_unpaid and truth["due"] < SNAPSHOT)
    g_status = got.get("status")
    g_unpaid = g_status in ("unpaid", "overdue")
    due = got.get("due_date")
    g_overdue = g_status == "overdue" or (g_unpaid and isinstance(due, str) and due < SNAPSHOT)
    return t_unpaid == g_unpaid and t_overdue == g_overdue


def evaluate(root: Path, show_errors: bool) -> dict[str, Any]:
    corpus = root / "personal-dev" / "corpus"
    records = [json.loads(ln) for ln in (root / "personal-dev" / "metadata.jsonl").open()]
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # field -> [correct, total]
    kind_confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors: list[str] = []
    t0 = time.perf_counter()

    def score(field: str, ok: bool, rec: dict[str, Any], got: object, want: object) -> None:
        hits[field][0] += int(ok)
        hits[field][1] += 1
        if not ok:
            errors.append(f"{field:16} {rec['path']}: got {got!r} want {want!r}")

    for rec in records:
        path = corpus / rec["path"]
        ex = extract_in_process(path)
        f = extract_fields(ex.text, path=rec["path"], title=ex.title, doc_type=ex.doc_type,
                           meta=ex.meta, mtime=path.stat().st_mtime)
        kind, m = rec["kind"], rec["meta"]
        if kind == "weird":
            continue
        kind_confusion[kind][str(f["kind"])] += 1
        score("kind", f["kind"] == kind, rec, f["kind"], kind)
        fin_truth = kind == "invoice"
        score("is_invoice", (f["kind"] == "invoice") == fin_truth, rec, f["kind"], kind)
        if kind == "invoice":
            score("inv.invoice_number", f["invoice_number"] == m["inv_no"], rec,
                  f["invoice_number"], m["inv_no"])
            score("inv.issue_date", f["issue_date"] == m["issue"], rec, f["issue_date"], m["issue"])
            score("inv.doc_date", f["doc_date"] == m["issue"], rec, f["doc_date"], m["issue"])
            score("inv.due_date", f["due_date"] == m["due"], rec, f["due_date"], m["due"])
            score("inv.amount", f["amount"] == m["amount"], rec, f["amount"], m["amount"])
            score("inv.currency", f["currency"] == m["currency"], rec, f["currency"],
                  m["currency"])
            score("inv.vendor", f["vendor"] == m["vendor"], rec, f["vendor"], m["vendor"])
            want = _status_truth(m["status"])
            score("inv.status", f["status"] == want, rec, f["status"], want)
            score("inv.unpaid/overdue", _unpaid_ok(m, f), rec, (f["status"], f["due_date"]),
                  (m["status"], m["due"]))
        elif kind == "receipt":
            score("rcpt.vendor", f["vendor"] == m["store"], rec, f["vendor"], m["store"])
            score("rcpt.doc_date", f["doc_date"] == m["date"], rec, f["doc_date"], m["date"])
            score("rcpt.amount", f["amount"] == m["total"], rec, f["amount"], m["total"])
            score("rcpt.currency", f["currency"] == m["currency"], rec, f["currency"],
                  m["currency"])
        elif kind in ("payment_confirmation", "payment_reminder"):
            score("pay.vendor", f["vendor"] == m["vendor"], rec, f["vendor"], m["vendor"])
            score("pay.doc_date", f["doc_date"] == m["date"], rec, f["doc_date"], m["date"])
            score("pay.invoice_number", f["invoice_number"] == m["ref_inv"], rec,
                  f["invoice_number"], m["ref_inv"])
        elif "date" in m and m["date"]:
            score("other.doc_date", f["doc_date"] == m["date"], rec, f["doc_date"], m["date"])
        if kind in ("contract", "email", "spreadsheet", "note", "meeting_notes", "health",
                    "insurance") and m.get("mentions"):
            score("mentions.not_invoice", f["kind"] != "invoice", rec, f["kind"], kind)

    elapsed = time.perf_counter() - t0
    table = {k: {"correct": v[0], "total": v[1], "accuracy": round(v[0] / v[1], 3)}
             for k, v in sorted(hits.items())}
    print(f"{'field':24} {'correct':>8} {'total':>6} {'acc':>6}")
    for k, v in table.items():
        print(f"{k:24} {v['correct']:>8} {v['total']:>6} {v['accuracy']:>6.3f}")
    print(f"({len(records)} files in {elapsed:.1f}s)")
    if show_errors:
        print("\n".join(errors))
    return {
        "corpus": "personal-dev",
        "files": len(records),
        "seconds": round(elapsed, 2),
        "fields": table,
        "kind_confusion": {k: dict(v) for k, v in kind_confusion.items()},
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = evaluate(eval_dir(), args.show_errors)
    out = REPO / "bench" / "results" / "fields_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
