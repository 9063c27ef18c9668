"""CSV and JSON: rows and flattened ``a.b[0].c: value`` lines, which read (and embed) like text."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from memexfs.extract.formats.base import Job, Parsed, decode, register
from memexfs.extract.sniff import Sniffed


@register("csv")
def parse_csv(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    text, codec = decode(data, sniffed.encoding)
    sample = text[:16384]
    delimiter = "\t" if job.name.lower().endswith(".tsv") else ","
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        pass
    lines: list[str] = []
    total = 0
    rows = 0
    warnings: list[str] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            cells = [" ".join(c.split()) for c in row]
            if not any(cells):
                continue
            line = " | ".join(cells)
            lines.append(line)
            rows += 1
            total += len(line) + 1
            if total > job.max_chars:
                warnings.append(f"stopped after {rows} rows: output limit")
                break
    except csv.Error as exc:
        warnings.append(f"CSV parse error, kept as text: {exc}")
        return Parsed(text=text, meta={"encoding": codec}, warnings=warnings)
    meta = {"encoding": codec, "rows": str(rows), "delimiter": delimiter}
    return Parsed(text="\n".join(lines), meta=meta, warnings=warnings)


@register("json")
def parse_json(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    """Flatten JSON into ``a.b[0].c: value`` lines, which read (and embed) like text."""
    text, codec = decode(data, sniffed.encoding)
    docs: list[Any] = []
    try:
        docs = [json.loads(text)]
    except (json.JSONDecodeError, RecursionError):
        try:
            docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        except (json.JSONDecodeError, RecursionError):
            return Parsed(text=text, meta={"encoding": codec},
                          warnings=["not valid JSON, indexed as text"])
    lines: list[str] = []
    budget = [job.max_chars]

    def flat(value: Any, prefix: str, depth: int) -> None:
        if budget[0] <= 0:
            return
        if depth > 50:
            line = f"{prefix}: {json.dumps(value)[:200]}"
        elif isinstance(value, dict):
            for k, v in value.items():
                flat(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
            return
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flat(v, f"{prefix}[{i}]", depth + 1)
            return
        else:
            line = f"{prefix}: {value}" if prefix else str(value)
        lines.append(line)
        budget[0] -= len(line) + 1

    for doc in docs:
        flat(doc, "", 0)
    warnings = [] if budget[0] > 0 else ["JSON flattened up to the output limit"]
    return Parsed(text="\n".join(lines), meta={"encoding": codec}, warnings=warnings)
