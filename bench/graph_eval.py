"""Topics, summaries, bridges and links on personal-dev, plus the 10k-file cost.

    nice -n 10 python -m bench.graph_eval [--encoder ternary] [--synthetic 10000]

personal-dev is the *dev* set: the clustering and summary knobs (query.topics.Params,
query.summary.Tuning) were chosen on it, so these numbers are not held-out estimates.

Reports
* topics vs labels: NMI and purity of the top-level topics and of the most specific (leaf)
  topics against ``kind`` (metadata.jsonl); purity of study notes' topics against ``subject``;
  the share of files in ``unsorted``;
* stability: 10 % of the files change (5 % removed, 5 % edited: their vector moves 30 % toward a
  random other file's), then a re-fit with the old model: the share of unchanged files that keep
  their topic id, of old ids that survive, of names kept; a fresh fit's label agreement (NMI) for
  comparison;
* summaries of every indexed file and every topic (real encoder): every sentence verbatim from
  its text (whitespace collapsed), its cited line holding its start, no near-duplicates (cosine <
  0.9 and word Jaccard < 0.8 between picks), sections covered; time per file;
* bridges of every indexed file: none already linked, none in the same folder, each explained;
  connect("French revolution", "economics");
* cost: topics (fit + names + sub-topics) and summaries (every file + every topic) for
  ``--synthetic`` files with synthetic vectors and a fast hashing encoder, on this machine.

Prints a table; writes ``bench/results/graph_eval.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import statistics
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from query.bridges import bridges, connect
from query.links import build_graph
from query.summary import (
    Picked,
    document_text,
    split_sentences,
    summarize,
    summarize_topic,
)
from query.topics import UNSORTED_ID, FileVector, Params, Topic, TopicModel, fit, normalise

log = logging.getLogger("bench.graph_eval")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# ---- metrics ---------------------------------------------------------------------------------
def nmi(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Normalised mutual information (arithmetic mean of the entropies)."""
    n = len(pred)
    if n == 0:
        return 0.0
    cp, cg, cj = Counter(pred), Counter(gold), Counter(zip(pred, gold, strict=True))
    mi = sum(c / n * math.log(c * n / (cp[a] * cg[b])) for (a, b), c in cj.items())
    hp = -sum(c / n * math.log(c / n) for c in cp.values())
    hg = -sum(c / n * math.log(c / n) for c in cg.values())
    return 2 * mi / (hp + hg) if hp + hg > 0 else 1.0


def purity(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    groups: dict[Hashable, list[Hashable]] = defaultdict(list)
    for p, g in zip(pred, gold, strict=True):
        groups[p].append(g)
    return sum(Counter(v).most_common(1)[0][1] for v in groups.values()) / max(1, len(pred))


def _all_topics(model: TopicModel) -> list[Topic]:
    return [x for t in model.topics for x in (t, *t.children)]


def _flat(s: str) -> str:
    return " ".join(s.split())


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


# ---- personal-dev ----------------------------------------------------------------------------
def eval_dir() -> Path:
    env = os.environ.get("MEMEXFS_EVAL_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "eval"


def index_corpus(store: Any, enc: Any, corpus: Path) -> None:
    """Every file of ``corpus`` through the real pipeline (extract, fields, chunk, embed)."""
    from memexfs.extract import Extractor
    from memexfs.pipeline import Pipeline
    from memexfs.vault import Vault

    vault = Vault(corpus.resolve())  # read-only corpus: no state folder is created
    paths = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file())
    extractor = Extractor()
    try:
        status = Pipeline(vault, store, enc, extractor).index_paths(paths)
    finally:
        extractor.close()
    log.info("indexed: %s", Counter(status.values()))


def topic_quality(model: TopicModel, meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    top, leaf = model.top_of(), model.topic_of()
    paths = sorted(p for p in top if p in meta)
    kinds = [meta[p]["kind"] for p in paths]
    study = [p for p in paths if meta[p]["kind"] == "study_notes"]
    subjects = [meta[p]["meta"]["subject"] for p in study]
    out: dict[str, Any] = {"files": len(paths), "topics": len(model.topics),
                           "leaf_topics": len(set(leaf.values()) - {UNSORTED_ID}),
                           "unsorted_share": round(len(model.unsorted) / max(1, len(paths)), 4)}
    for level, mapping in (("top", top), ("leaf", leaf)):
        pred = [mapping[p] for p in paths]
        out[f"{level}_nmi_kind"] = round(nmi(pred, kinds), 4)
        out[f"{level}_purity_kind"] = round(purity(pred, kinds), 4)
        out[f"{level}_purity_study_subject"] = round(
            purity([mapping[p] for p in study], subjects), 4)
    out["names"] = [{"id": t.id, "name": t.name, "size": t.size,
                     "kinds": Counter(meta[p]["kind"] for p in t.files if p in meta)
                     .most_common(3),
                     "subtopics": [f"{c.name} ({c.size})" for c in t.children]}
                    for t in model.topics]
    out["unsorted"] = model.unsorted
    return out


def stability(files: list[FileVector], texts: dict[str, list[str]], model: TopicModel,
              params: Params, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = len(files)
    order = rng.permutation(n)
    removed = set(order[: n // 20].tolist())
    edited = set(order[n // 20: n // 10].tolist())
    changed: list[FileVector] = []
    for i, f in enumerate(files):
        if i in removed:
            continue
        if i in edited:
            other = files[int(rng.integers(n))].vector
            changed.append(FileVector(f.file_id, f.path, normalise(0.7 * f.vector + 0.3 * other)))
        else:
            changed.append(f)
    same = [f for i, f in enumerate(files) if i not in removed and i not in edited]
    warm = fit(changed, texts, params, previous=model)
    fresh = fit(changed, texts, params)
    out: dict[str, Any] = {"changed_files": len(removed) + len(edited), "of": n}
    for label, m in (("refit", warm), ("fresh", fresh)):
        a_top, b_top = model.top_of(), m.top_of()
        a_leaf, b_leaf = model.topic_of(), m.topic_of()
        out[f"{label}_agreement_nmi"] = round(nmi([a_top[f.path] for f in same],
                                                  [b_top[f.path] for f in same]), 4)
        if label == "refit":
            out["unchanged_kept_top_id"] = round(
                sum(a_top[f.path] == b_top[f.path] for f in same) / len(same), 4)
            out["unchanged_kept_leaf_id"] = round(
                sum(a_leaf[f.path] == b_leaf[f.path] for f in same) / len(same), 4)
            old = {t.id: t.name for t in model.topics}
            new = {t.id: t.name for t in m.topics}
            out["topic_ids_surviving"] = round(len(set(old) & set(new)) / max(1, len(old)), 4)
            out["names_kept"] = round(sum(old[i] == new[i] for i in set(old) & set(new))
                                      / max(1, len(old)), 4)
    return out


def summary_checks(summaries: Sequence[Sequence[Picked]], texts: dict[str, str], encoder: Any
                   ) -> dict[str, Any]:
    """Checks over ``summaries`` (each a list of picks; a topic's may cite several files)."""
    verbatim = lines_ok = total = dup_pairs = docs_multi = covered = 0
    flat = {p: _flat(t) for p, t in texts.items()}
    rows = {p: t.splitlines() for p, t in texts.items()}
    for picks in summaries:
        for p in picks:
            total += 1
            verbatim += p.text in flat[p.path]
            first = p.text.split()[0] if p.text.split() else ""
            lines_ok += 0 < p.line <= len(rows[p.path]) and first in rows[p.path][p.line - 1]
        if len(picks) > 1:
            vecs = np.asarray(encoder.encode([p.text for p in picks]), dtype=np.float32)
            sims = vecs @ vecs.T
            for i in range(len(picks)):
                for j in range(i + 1, len(picks)):
                    if sims[i, j] >= 0.9 or _jaccard(picks[i].text, picks[j].text) >= 0.8:
                        dup_pairs += 1
        paths = {p.path for p in picks}
        if len(paths) == 1 and len(picks) >= 2:  # sections covered (file summaries)
            sents = split_sentences(texts[next(iter(paths))])
            if len({s.section for s in sents}) >= 2:
                docs_multi += 1
                cited = {s.section for s in sents if any(s.text == p.text for p in picks)}
                covered += len(cited) >= 2
    return {"summaries": len(summaries), "sentences": total,
            "verbatim_share": round(verbatim / max(1, total), 4),
            "cited_line_share": round(lines_ok / max(1, total), 4),
            "near_duplicate_pairs": dup_pairs,
            "multi_section_docs": docs_multi,
            "multi_section_docs_citing_2plus_sections": covered}


def run_personal(encoder_name: str, params: Params) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    from bench.retrieval_eval import CachedEncoder
    from embed import load_encoder
    from memexfs.store import EdgeStore

    inner = load_encoder(encoder_name)
    enc = CachedEncoder(inner, RESULTS / "cache" / f"{inner.name}.npz")
    base = eval_dir() / "personal-dev"
    corpus = base / "corpus"
    meta = {r["path"]: r for r in (json.loads(x) for x in
                                   (base / "metadata.jsonl").read_text().splitlines() if x)}
    report: dict[str, Any] = {"encoder": inner.name}
    with tempfile.TemporaryDirectory(prefix="memexfs-graph-") as tmp:
        store = EdgeStore(tmp, enc.dim)
        t0 = time.perf_counter()
        index_corpus(store, enc, corpus)
        enc.save()
        report["index_s"] = round(time.perf_counter() - t0, 2)
        report.update(evaluate_store(store, inner, corpus, meta, params))
        store.close()
    return report


def evaluate_store(store: Any, inner: Any, corpus: Path, meta: dict[str, dict[str, Any]],
                   params: Params) -> dict[str, Any]:
    """Every personal-dev measurement over an indexed ``store`` of ``corpus``."""
    from query.topics import chunk_texts, file_vectors

    report: dict[str, Any] = {}
    t0 = time.perf_counter()
    files = file_vectors(store)
    texts = chunk_texts(store)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = fit(files, texts, params)
    report["fit_s"] = round(time.perf_counter() - t0, 3)
    report["vectors_s"] = round(t_vec, 3)
    report["topics"] = topic_quality(model, meta)
    report["stability"] = stability(files, texts, model, params)
    # links
    paths = sorted(r.path for r in store.iter_files())
    t0 = time.perf_counter()
    graph = build_graph(corpus, paths)
    report["links"] = {"files": len(paths), "edges": Counter(e.kind for e in graph.edges()),
                       "build_s": round(time.perf_counter() - t0, 3)}
    # summaries: every indexed file (real encoder, not cached: sentences differ from chunks)
    per_file: dict[str, tuple[str, list[Picked]]] = {}
    times = []
    origins: Counter[str] = Counter()
    for f in files:
        t0 = time.perf_counter()
        text, origin = document_text(store, f.path, corpus)
        picks = summarize(text, f.path, inner)
        times.append(time.perf_counter() - t0)
        origins[origin] += 1
        per_file[f.path] = (text, picks)
    texts_of = {k: t for k, (t, _) in per_file.items()}
    report["summaries"] = summary_checks([p for _, p in per_file.values()], texts_of, inner)
    report["summaries"]["origins"] = dict(origins)
    report["summaries"]["empty"] = sum(1 for _, p in per_file.values() if not p)
    report["summaries"]["ms_per_file_median"] = round(1000 * statistics.median(times), 1)
    report["summaries"]["ms_per_file_max"] = round(1000 * max(times), 1)
    report["summaries"]["examples"] = {
        p: [f"{x.text}  [{x.path}:{x.line}]" for x in per_file[p][1]]
        for p in ("Notes/School/History/L02_french_revolution.md",
                  "Notes/School/History/L05_renaissance.pdf") if p in per_file}
    t0 = time.perf_counter()
    topic_picks = [summarize_topic([(p, texts_of[p]) for p in topic.files[:5] if p in texts_of],
                                   topic.centroid, inner) for topic in _all_topics(model)]
    t_topics = time.perf_counter() - t0
    report["topic_summaries"] = summary_checks(topic_picks, texts_of, inner)
    report["topic_summaries"]["s_all_topics"] = round(t_topics, 2)
    report["topic_summaries"]["examples"] = {
        t.name: [f"{x.text}  [{x.path}:{x.line}]" for x in picks]
        for t, picks in zip(_all_topics(model), topic_picks, strict=True)}
    # new file: placement + summary (vector known once indexed)
    new = files[len(files) // 2]
    t0 = time.perf_counter()
    model.assign(new.vector)
    text, _ = document_text(store, new.path, corpus)
    summarize(text, new.path, inner)
    report["new_file_topic_and_summary_ms"] = round(1000 * (time.perf_counter() - t0), 1)
    # bridges
    bad_linked = bad_folder = unexplained = with_any = cross = total = 0
    t0 = time.perf_counter()
    examples: dict[str, list[str]] = {}
    leaf = model.topic_of()
    for f in files:
        found = bridges(store, f.path, model, graph)
        with_any += bool(found)
        for b in found:
            total += 1
            bad_linked += graph.linked(f.path, b.path)
            bad_folder += b.path.rsplit("/", 1)[0] == f.path.rsplit("/", 1)[0]
            unexplained += not (b.source.text and b.target.text)
            cross += leaf.get(b.path, UNSORTED_ID) != leaf.get(f.path, UNSORTED_ID)
        if f.path.startswith("Notes/School/History/L02"):
            examples[f.path] = [f"{b.path} ({b.score:.2f}): {b.target.text[:90]}"
                                for b in found[:5]]
    report["bridges"] = {"files": len(files), "files_with_bridges": with_any,
                         "bridges": total, "already_linked": bad_linked,
                         "same_folder": bad_folder, "unexplained": unexplained,
                         "cross_topic": cross,
                         "ms_per_file": round(1000 * (time.perf_counter() - t0)
                                              / max(1, len(files)), 1),
                         "examples": examples}
    conn = connect(store, inner, "French revolution", "economics", graph)
    report["connect_french_revolution_economics"] = [
        f"{c.path}{' -> ' + c.via if c.via else ''} ({c.score:.2f}: "
        f"{c.sim_a:.2f}/{c.sim_b:.2f})" for c in conn[:8]]
    return report


# ---- cost at 10k files ---------------------------------------------------------------------------
class FastHashEncoder:
    """crc32-hashed bag of words (C speed): stands in for Cortex in the cost run only."""

    name, dim, max_tokens = "crc-hash-1", 384, 256

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in text.lower().split():
                h = zlib.crc32(w.encode())
                out[row, h % self.dim] += 1.0 if h & 0x10000 else -1.0
        return normalise(out)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def run_synthetic(n: int, params: Params, seed: int = 11) -> dict[str, Any]:
    """Synthetic vault: ``n`` files around 60 directions, texts from per-topic vocabularies."""
    rng = np.random.default_rng(seed)
    dim, groups = 384, 60
    centres = normalise(rng.normal(size=(groups, dim)).astype(np.float32))
    vocab = [[f"w{g}x{i}" for i in range(40)] for g in range(groups)]
    common = [f"common{i}" for i in range(200)]
    labels = rng.integers(groups, size=n)
    files, texts, docs = [], {}, {}
    for i in range(n):
        g = int(labels[i])
        v = normalise(centres[g] + 0.06 * rng.normal(size=dim).astype(np.float32))
        path = f"d{i % 97}/f{i:05d}.md"
        fid = f"id{i:06d}"
        files.append(FileVector(fid, path, v))
        sentences = []
        for _ in range(12):
            words = [vocab[g][int(rng.integers(40))] if rng.random() < 0.5
                     else common[int(rng.integers(200))] for _ in range(12)]
            sentences.append(" ".join(words).capitalize() + ".")
        body = "# Title\n\n" + " ".join(sentences[:6]) + "\n\n## Part\n\n" + " ".join(sentences[6:])
        texts[fid] = [body]
        docs[path] = body
    enc = FastHashEncoder()
    t0 = time.perf_counter()
    model = fit(files, texts, params)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path, body in docs.items():
        summarize(body, path, enc)
    t_files = time.perf_counter() - t0
    t0 = time.perf_counter()
    for topic in _all_topics(model):
        summarize_topic([(p, docs[p]) for p in topic.files[:5]], topic.centroid, enc)
    t_topics = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in files[:1000]:
        model.assign(f.vector)
    t_assign = (time.perf_counter() - t0) / 1000
    pred = [model.top_of()[f.path] for f in files]
    return {"files": n, "topics": len(model.topics),
            "unsorted_share": round(len(model.unsorted) / n, 4),
            "nmi_vs_generator": round(nmi(pred, labels.tolist()), 4),
            "fit_s": round(t_fit, 2), "file_summaries_s": round(t_files, 2),
            "topic_summaries_s": round(t_topics, 2),
            "total_s": round(t_fit + t_files + t_topics, 2),
            "assign_ms": round(1000 * t_assign, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="ternary")
    ap.add_argument("--synthetic", type=int, default=10_000)
    ap.add_argument("--skip-personal", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "graph_eval.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = Params()
    report: dict[str, Any] = {"params": dataclasses.asdict(params)}
    if not args.skip_personal:
        report["personal_dev"] = run_personal(args.encoder, params)
    if args.synthetic:
        report["synthetic"] = run_synthetic(args.synthetic, params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print_table(report)
    print(f"\nwrote {args.out}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    rows: list[tuple[str, Any, str]] = []
    pd = report.get("personal_dev")
    if pd:
        t, s, su, tsu, b = (pd["topics"], pd["stability"], pd["summaries"],
                            pd["topic_summaries"], pd["bridges"])
        rows += [
            ("files / topics / leaf topics", f"{t['files']} / {t['topics']} / {t['leaf_topics']}",
             ""),
            ("NMI vs kind (top / leaf)", f"{t['top_nmi_kind']} / {t['leaf_nmi_kind']}", ">= 0.6"),
            ("purity vs kind (top / leaf)", f"{t['top_purity_kind']} / {t['leaf_purity_kind']}",
             ""),
            ("study notes purity vs subject (top / leaf)",
             f"{t['top_purity_study_subject']} / {t['leaf_purity_study_subject']}", ">= 0.85"),
            ("unsorted share", t["unsorted_share"], "<= 0.15"),
            ("10% changed: unchanged files keep topic id (top / leaf)",
             f"{s['unchanged_kept_top_id']} / {s['unchanged_kept_leaf_id']}", ""),
            ("10% changed: old ids surviving / names kept",
             f"{s['topic_ids_surviving']} / {s['names_kept']}", ""),
            ("label agreement NMI: re-fit / fresh fit",
             f"{s['refit_agreement_nmi']} / {s['fresh_agreement_nmi']}", ""),
            ("summaries: verbatim / cited line", f"{su['verbatim_share']} / "
             f"{su['cited_line_share']}", "1.0"),
            ("summaries: near-duplicate pairs", su["near_duplicate_pairs"], "0"),
            ("summaries: multi-section docs citing 2+ sections",
             f"{su['multi_section_docs_citing_2plus_sections']} / {su['multi_section_docs']}", ""),
            ("summaries: ms per file (median / max)",
             f"{su['ms_per_file_median']} / {su['ms_per_file_max']}", ""),
            ("topic summaries: verbatim / near-dup pairs",
             f"{tsu['verbatim_share']} / {tsu['near_duplicate_pairs']}", ""),
            ("new file topic + summary (ms)", pd["new_file_topic_and_summary_ms"], "<= 1000"),
            ("bridges: total / linked / same folder / unexplained",
             f"{b['bridges']} / {b['already_linked']} / {b['same_folder']} / "
             f"{b['unexplained']}", "x / 0 / 0 / 0"),
            ("bridges: files with any / ms per file",
             f"{b['files_with_bridges']} / {b['ms_per_file']}", ""),
            ("link edges", dict(pd["links"]["edges"]), ""),
            ("fit on personal-dev (s)", pd["fit_s"], ""),
        ]
    sy = report.get("synthetic")
    if sy:
        rows += [
            (f"synthetic {sy['files']}: topics / NMI vs generator",
             f"{sy['topics']} / {sy['nmi_vs_generator']}", ""),
            (f"synthetic {sy['files']}: fit + file summaries + topic summaries (s)",
             f"{sy['fit_s']} + {sy['file_summaries_s']} + {sy['topic_summaries_s']} = "
             f"{sy['total_s']}", "<= 60"),
            ("assign a new file (ms)", sy["assign_ms"], ""),
        ]
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'metric':<{width}}  {'value':<36} target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value!s:<36} {target}")
    if pd:
        print("\ntopics:")
        for t in pd["topics"]["names"]:
            subs = f"  [{'; '.join(t['subtopics'])}]" if t["subtopics"] else ""
            print(f"  {t['id']:>3} {t['name']:<34} {t['size']:>4}  {t['kinds']}{subs}")
        print("\nconnect('French revolution', 'economics'):")
        for line in pd["connect_french_revolution_economics"]:
            print(f"  {line}")


if __name__ == "__main__":
    raise SystemExit(main())
