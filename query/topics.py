"""Topics: the vault's files clustered by meaning, named by their distinctive words.

* A file's vector is the normalised mean of its chunk vectors (:func:`file_vectors`).
* Clustering is spherical k-means (cosine), k-means++ seeded from a fixed seed over the files in
  path order, so the same index gives the same topics; mini-batch updates above
  ``Params.minibatch_over`` files. Every step is O(n·k·d): no pairwise matrix, 100k files stay
  feasible. ``k`` grows with the vault (~sqrt(n), bounded); clusters that come out nearly
  identical are merged, and clusters too small to be a topic dissolve.
* Files far from their centroid (cosine below ``Params.outlier_cos``) go to ``unsorted`` instead
  of being forced into a topic (BERTopic's 30-50 % outliers are the opposite failure: the
  threshold is chosen so that few files are unsorted, see bench/graph_eval.py).
* Large topics get one level of sub-topics by the same procedure; a split is kept only when its
  parts are clearly apart (simplified silhouette, O(m·k)).
* Names: c-TF-IDF over the topic's chunk texts against the other topics, weighted by how many of
  the topic's files use the word, 2–3 lower-case words; unique among siblings.
* Ids survive re-clustering: :func:`fit` with ``previous`` warm-starts k-means from the old
  centroids, matches new clusters to old ones by shared files (then by centroid cosine),
  greedily, strongest first, and keeps the old name while its words still describe the topic.
* :meth:`TopicModel.assign` places a new file at once; :meth:`TopicModel.needs_recluster` says when
  enough has changed for a background re-fit.

Size: one procedure (file vectors -> spherical k-means -> c-TF-IDF names -> the model
with stable ids) whose steps share :class:`Params`; kept in one file so it reads in order.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from memexfs.schema import INDEXED
from memexfs.store import Store

log = logging.getLogger(__name__)

UNSORTED = "unsorted"
UNSORTED_ID = -1


@dataclass(frozen=True)
class Params:
    """Clustering knobs; the defaults were chosen on personal-dev (bench/graph_eval.py)."""

    seed: int = 20240115
    # None: round(sqrt(n)) within [min_k, max_k]. personal-dev (251 files, 4 seeds): sqrt(n) =
    # 16 gives NMI vs kind 0.67-0.69 and study-note purity 0.95-1.0; sqrt(n/2) = 11 gives
    # 0.58-0.69 and 0.76-0.85 (top level); 8-28 all land within NMI 0.61-0.67.
    k: int | None = None
    min_k: int = 2
    max_k: int = 64  # a top level to browse; sub-topics hold the rest
    iters: int = 40
    restarts: int = 4  # k-means runs (seed, seed+1, ...): the tightest one wins
    # Files whose cosine to their topic's centroid is below this are unsorted. personal-dev with
    # Cortex: 0.35 leaves 0-0.4 % unsorted, 0.45 1-5 % (one-off notes, a journal) for +0.01-0.02
    # NMI; the ceiling is 15 %.
    outlier_cos: float = 0.45
    min_size: int = 3  # a cluster with fewer files is no topic: its files are re-assigned
    merge_cos: float = 0.92  # two centroids this close are one topic
    sub_min: int = 12  # a topic with at least this many files is split into sub-topics
    sub_max_k: int = 8  # sub-topics per topic: ~sqrt(size), merged and dissolved like topics
    # A sub-topic split is kept when its simplified silhouette (mean over files of
    # (b - a) / max(a, b), a/b the cosine distances to the own/nearest other centroid) reaches
    # this. Splits of personal-dev's topics (Cortex) score 0.40-0.80; k-means forced onto one
    # homogeneous Gaussian blob of 30-60 files in 384 dimensions scores 0.23-0.32 (larger
    # blobs merge back into one cluster by merge_cos).
    sub_silhouette: float = 0.35
    minibatch_over: int = 20_000
    batch: int = 4096
    name_words: int = 3
    keywords: int = 10
    recluster_share: float = 0.10  # re-fit when this share of files changed since the fit


# ---- vectors --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileVector:
    file_id: str
    path: str
    vector: np.ndarray  # float32, L2-normalised


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    unit: np.ndarray = np.divide(x, np.maximum(norms, 1e-12), dtype=np.float32)
    return unit


def mean_vector(chunk_vectors: Iterable[Sequence[float]]) -> np.ndarray | None:
    """A file's vector: the normalised mean of its chunk vectors (None without chunks)."""
    rows = [np.asarray(v, dtype=np.float32) for v in chunk_vectors]
    if not rows:
        return None
    return normalise(np.mean(np.stack(rows), axis=0))


def file_vectors(store: Store, cache: dict[str, tuple[str, np.ndarray]] | None = None
                 ) -> list[FileVector]:
    """Vectors of every indexed file, in path order.

    ``cache`` (file_id -> (content_hash, vector)) is read and updated, so a re-fit fetches the
    chunk vectors only of files whose content changed (one store scroll per file otherwise).
    """
    out: list[FileVector] = []
    for rec in store.iter_files():
        if rec.status != INDEXED or not rec.chunks:
            continue
        hit = cache.get(rec.file_id) if cache is not None else None
        if hit is not None and hit[0] == rec.content_hash:
            vec: np.ndarray | None = hit[1]
        else:
            vec = mean_vector(store.chunk_vectors(rec.file_id).values())
            if vec is not None and cache is not None:
                cache[rec.file_id] = (rec.content_hash, vec)
        if vec is not None:
            out.append(FileVector(rec.file_id, rec.path, vec))
    out.sort(key=lambda f: f.path)
    return out


def chunk_texts(store: Store) -> dict[str, list[str]]:
    """file_id -> chunk bodies in chunk order (what topic names are made from)."""
    parts: dict[str, list[tuple[int, str]]] = {}
    for hit in store.iter_chunks():
        fid = str(hit.payload.get("file_id", ""))
        if fid:
            idx = hit.payload.get("chunk_index", 0)
            parts.setdefault(fid, []).append((idx if isinstance(idx, int) else 0,
                                              str(hit.payload.get("body", ""))))
    return {fid: [t for _, t in sorted(items)] for fid, items in parts.items()}


# ---- spherical k-means ------------------------------------------------------------------------
def choose_k(n: int, p: Params) -> int:
    if p.k is not None:
        return max(1, min(p.k, n))
    return max(1, min(n, max(p.min_k, min(p.max_k, round(math.sqrt(n))))))


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds under cosine distance: O(n·k)."""
    n = x.shape[0]
    centres = [int(rng.integers(n))]
    dist = np.maximum(1.0 - x @ x[centres[0]], 0.0)
    for _ in range(1, k):
        weights = dist * dist
        total = float(weights.sum())
        if total <= 0.0:
            break  # fewer distinct points than k
        nxt = int(np.searchsorted(np.cumsum(weights), rng.random() * total))
        nxt = min(nxt, n - 1)
        centres.append(nxt)
        dist = np.minimum(dist, np.maximum(1.0 - x @ x[nxt], 0.0))
    return x[centres].copy()


def _extend(x: np.ndarray, c: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``c`` plus k-means++ draws up to ``k`` centroids."""
    rows = [r for r in c]
    dist = np.maximum(1.0 - (x @ c.T).max(axis=1), 0.0)
    while len(rows) < k:
        weights = dist * dist
        total = float(weights.sum())
        if total <= 0.0:
            break
        nxt = min(int(np.searchsorted(np.cumsum(weights), rng.random() * total)), len(x) - 1)
        rows.append(x[nxt])
        dist = np.minimum(dist, np.maximum(1.0 - x @ x[nxt], 0.0))
    return np.stack(rows).astype(np.float32)


def _assign(x: np.ndarray, c: np.ndarray, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid and its cosine for every row (blocked: memory O(block·k))."""
    labels = np.empty(x.shape[0], dtype=np.int64)
    sims = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], block):
        sc = x[s:s + block] @ c.T
        labels[s:s + block] = np.argmax(sc, axis=1)
        sims[s:s + block] = sc[np.arange(sc.shape[0]), labels[s:s + block]]
    return labels, sims


def _centroids(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Normalised member means (sorted segments + reduceat: O(n·d); ``np.add.at`` is ~50x
    slower). A cluster without members gets a zero row."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    present, starts = np.unique(sorted_labels, return_index=True)
    sums = np.zeros((k, x.shape[1]), dtype=np.float32)
    if present.size:
        sums[present] = np.add.reduceat(x[order], starts, axis=0)
    return normalise(sums)


def spherical_kmeans(x: np.ndarray, k: int, seed: int, iters: int = 40,
                     minibatch_over: int = 20_000, batch: int = 4096, restarts: int = 1,
                     init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best of ``restarts`` runs of :func:`_kmeans_once` (highest total cosine to the
    centroids): seeds ``seed``, ``seed + 1``, ... so the result stays deterministic while one
    unlucky k-means++ draw no longer decides the topics. ``init`` (earlier centroids) warm-starts
    a single run instead: a re-fit then moves the old topics rather than drawing new ones."""
    if init is not None and init.shape[0]:
        return _kmeans_once(x, k, seed, iters, minibatch_over, batch, init)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for r in range(max(1, restarts)):
        labels, c = _kmeans_once(x, k, seed + r, iters, minibatch_over, batch)
        fit_ = float(np.sum(x * c[labels]))
        if best is None or fit_ > best[0] + 1e-6:
            best = (fit_, labels, c)
    assert best is not None
    return best[1], best[2]


def _kmeans_once(x: np.ndarray, k: int, seed: int, iters: int, minibatch_over: int,
                 batch: int, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids) of ``x`` (unit rows) in ``k`` clusters; deterministic for a seed.

    Empty clusters are re-seeded with the point farthest from its centroid. Above
    ``minibatch_over`` rows, centroids move by mini-batches (Sculley 2010) and one full
    assignment ends the fit.
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    c = _kmeanspp(x, k, rng) if init is None else _extend(x, normalise(init)[:k], k, rng)
    k = c.shape[0]
    if n > minibatch_over:
        counts = np.zeros(k, dtype=np.float64)
        for _ in range(iters):
            idx = rng.choice(n, size=min(batch, n), replace=False)
            xb = x[idx]
            lb, _ = _assign(xb, c)
            for j in np.unique(lb):
                members = xb[lb == j]
                counts[j] += members.shape[0]
                eta = members.shape[0] / counts[j]
                c[j] = (1 - eta) * c[j] + eta * members.mean(axis=0)
            c = normalise(c)
        labels, _ = _assign(x, c)
        return labels, _centroids(x, labels, k)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iters):
        new, sims = _assign(x, c)
        sizes = np.bincount(new, minlength=k)
        for j in np.flatnonzero(sizes == 0):  # re-seed an empty cluster
            far = int(np.argmin(sims))
            new[far], sims[far] = j, 1.0
        if np.array_equal(new, labels):
            break
        labels = new
        c = _centroids(x, labels, k)
    return labels, c


def simplified_silhouette(x: np.ndarray, labels: np.ndarray, c: np.ndarray) -> float:
    """Mean of (b - a) / max(a, b) with a, b the cosine distances to the own and the nearest
    other centroid: O(n·k), unlike the pairwise silhouette."""
    if c.shape[0] < 2:
        return 0.0
    dist = 1.0 - x @ c.T
    a = dist[np.arange(x.shape[0]), labels]
    dist[np.arange(x.shape[0]), labels] = np.inf
    b = dist.min(axis=1)
    return float(np.mean((b - a) / np.maximum(np.maximum(a, b), 1e-9)))


def _cluster(x: np.ndarray, k: int, p: Params, init: np.ndarray | None = None,
             outliers: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """k-means, then merge near-identical centroids and dissolve tiny clusters; labels are
    0..k'-1, or -1 for an outlier (when ``outliers``)."""
    labels, c = spherical_kmeans(x, k, p.seed, p.iters, p.minibatch_over, p.batch,
                                 p.restarts, init)
    # merge: union clusters whose centroids are nearly the same direction (k×k, k small)
    k = c.shape[0]
    parent = list(range(k))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sims = c @ c.T
    for i in range(k):
        for j in range(i + 1, k):
            if sims[i, j] >= p.merge_cos:
                parent[root(j)] = root(i)
    labels = np.array([root(int(lab)) for lab in labels], dtype=np.int64)
    # dissolve clusters below min_size: their files join the nearest remaining cluster
    for _ in range(3):
        sizes = Counter(labels.tolist())
        keep = sorted(j for j, s in sizes.items() if s >= p.min_size) or sorted(sizes)
        cent = normalise(np.stack([x[labels == j].mean(axis=0) for j in keep]))
        labels, _ = _assign(x, cent)
        if len(keep) == len(sizes):
            break
    cent = _centroids(x, labels, int(labels.max()) + 1)
    sim = np.sum(x * cent[labels], axis=1)
    if outliers:
        labels = np.where(sim >= p.outlier_cos, labels, -1)
    return labels, cent


# ---- names ---------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")
_ADDRESS = re.compile(r"\S+@\S+|\w+://\S+|www\.\S+")  # e-mail addresses and URLs name nothing
STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can cannot could did do does doing don't down during each few for
from further had has have having he her here hers herself him himself his how i if in into is it
its itself just let me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves one two three four
five six seven eight nine ten first second new may might must shall via per etc re fw fwd
subject cc sent date dear hi hello thanks thank regards best please yes get got use used
using like make made many much well still even back way see sure within without upon
jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun com org net http https
www html pdf docx txt eml csv jpg png
""".split())  # noqa: SIM905 (a word list reads better as text)


def tokens(text: str) -> list[str]:
    """Lower-case words of 3+ letters that are not stop words (names are made of these)."""
    return [w for w in _WORD.findall(_ADDRESS.sub(" ", text.lower()))
            if len(w) >= 3 and w not in STOPWORDS and not w.startswith("'")]


def ctfidf(groups: Sequence[Sequence[str]], doc_freq: Sequence[Counter[str]],
           sizes: Sequence[int], top: int) -> list[list[tuple[str, float]]]:
    """Distinctive words per group, best first.

    BERTopic's class TF-IDF, tf(w, g) · log(1 + A / f(w)) (A = mean words per group, f = the
    word's frequency over all groups), times the share of the group's files that use the word
    (one long file cannot name a topic alone), times log(1 + G / g(w))² where g(w) counts the
    groups in which a third of the files use the word: the vault owner's name, on every letter
    and invoice, is frequent in one topic but common to all of them.
    """
    tfs = [Counter(g) for g in groups]
    total: Counter[str] = Counter()
    spread: Counter[str] = Counter()
    for tf, df, size in zip(tfs, doc_freq, sizes, strict=True):
        total.update(tf)
        spread.update(w for w, d in df.items() if d * 3 >= size)
    avg = sum(len(g) for g in groups) / max(1, len(groups))
    n_groups = len(groups)
    out = []
    for tf, df, size in zip(tfs, doc_freq, sizes, strict=True):
        n_words = max(1, sum(tf.values()))
        scored = []
        for w, f in tf.items():
            cover = df.get(w, 0) / max(1, size)
            common = math.log(1 + n_groups / max(1, spread[w])) ** 2
            scored.append((w, f / n_words * math.log(1 + avg / total[w]) * math.sqrt(cover)
                           * common))
        scored.sort(key=lambda t: (-t[1], t[0]))
        out.append(scored[:top])
    return out


def _unique_names(keywords: list[list[str]], words: int,
                  keep: Mapping[int, str] | None = None) -> list[str]:
    """2–3 keyword names, unique among siblings; ``keep`` pins names of matched old topics."""
    names: list[str] = [""] * len(keywords)
    used: set[str] = set()
    for i, name in (keep or {}).items():
        if name and name not in used:
            names[i] = name
            used.add(name)
    for i, kws in enumerate(keywords):
        if names[i]:
            continue
        kws = kws or ["misc"]
        n = min(words, len(kws))
        name = " ".join(kws[:n])
        extra = n
        while (name in used or name == UNSORTED) and extra < len(kws):
            name = f"{name} {kws[extra]}"
            extra += 1
        base, dup = name, 2
        while name in used or name == UNSORTED:
            name = f"{base} {dup}"
            dup += 1
        names[i] = name
        used.add(name)
    return names


# ---- the model --------------------------------------------------------------------------------
@dataclass
class Topic:
    """One topic (or sub-topic). ``files`` are paths ranked by centrality (cosine to the
    centroid, in ``scores``)."""

    id: int
    name: str
    keywords: list[str]
    files: list[str]
    scores: list[float]
    centroid: np.ndarray
    file_ids: list[str] = field(default_factory=list)
    children: list[Topic] = field(default_factory=list)
    parent: int | None = None

    @property
    def size(self) -> int:
        return len(self.files)

    def child(self, name: str) -> Topic | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass
class Placement:
    """Where :meth:`TopicModel.assign` puts a file."""

    topic: int  # UNSORTED_ID when no topic is close enough
    sub: int | None
    score: float


@dataclass
class TopicModel:
    topics: list[Topic]  # sorted by size, largest first
    unsorted: list[str]  # paths
    params: Params
    fitted_files: int = 0
    changed: int = 0  # files added/changed/removed since the fit
    next_id: int = 0  # ids are never reused
    unsorted_ids: list[str] = field(default_factory=list)
    k: int = 0  # the k asked of k-means (re-fits keep it)

    def by_id(self, topic_id: int) -> Topic | None:
        for t in self.topics:
            if t.id == topic_id:
                return t
            for c in t.children:
                if c.id == topic_id:
                    return c
        return None

    def by_name(self, name: str) -> Topic | None:
        return next((t for t in self.topics if t.name == name), None)

    def topic_of(self) -> dict[str, int]:
        """path -> the most specific topic id (UNSORTED_ID for unsorted files)."""
        out = {p: UNSORTED_ID for p in self.unsorted}
        for t in self.topics:
            for p in t.files:
                out[p] = t.id
            for c in t.children:
                for p in c.files:
                    out[p] = c.id
        return out

    def top_of(self) -> dict[str, int]:
        """path -> top-level topic id (UNSORTED_ID for unsorted files)."""
        out = {p: UNSORTED_ID for p in self.unsorted}
        for t in self.topics:
            out.update(dict.fromkeys(t.files, t.id))
        return out

    def assign(self, vector: np.ndarray) -> Placement:
        """The topic (and sub-topic) a new file's vector joins now, without a re-fit."""
        if not self.topics:
            return Placement(UNSORTED_ID, None, 0.0)
        v = normalise(np.asarray(vector, dtype=np.float32))
        sims = np.stack([t.centroid for t in self.topics]) @ v
        best = int(np.argmax(sims))
        score = float(sims[best])
        if score < self.params.outlier_cos:
            return Placement(UNSORTED_ID, None, score)
        top = self.topics[best]
        sub = None
        if top.children:
            csims = np.stack([c.centroid for c in top.children]) @ v
            sub = top.children[int(np.argmax(csims))].id
        return Placement(top.id, sub, score)

    def add(self, path: str, file_id: str, vector: np.ndarray) -> Placement:
        """Place a new (or changed) file at once: it is listed in its nearest topic, ranked by
        its cosine, until the next re-fit."""
        self._drop(path)
        place = self.assign(vector)
        self.changed += 1
        if place.topic == UNSORTED_ID:
            i = bisect.bisect(self.unsorted, path)
            self.unsorted.insert(i, path)
            self.unsorted_ids.insert(i, file_id)
            return place
        ids = [place.topic] if place.sub is None else [place.topic, place.sub]
        targets = [t for t in map(self.by_id, ids) if t is not None]
        for t in targets:
            score = float(t.centroid @ normalise(vector))
            pos = next((i for i, s in enumerate(t.scores) if s < score), len(t.scores))
            t.files.insert(pos, path)
            t.scores.insert(pos, round(score, 4))
            t.file_ids.insert(pos, file_id)
        return place

    def remove(self, path: str) -> None:
        """A file was deleted: unlist it now (counts toward :meth:`needs_recluster`)."""
        if self._drop(path):
            self.changed += 1

    def _drop(self, path: str) -> bool:
        found = False
        for top in self.topics:
            for t in (top, *top.children):
                if path in t.files:
                    i = t.files.index(path)
                    del t.files[i], t.scores[i], t.file_ids[i]
                    found = True
        if path in self.unsorted:
            i = self.unsorted.index(path)
            del self.unsorted[i]
            if i < len(self.unsorted_ids):
                del self.unsorted_ids[i]
            found = True
        return found

    def needs_recluster(self, total: int | None = None) -> bool:
        """True when more than ``recluster_share`` of the files changed since the fit."""
        base = max(1, self.fitted_files if total is None else total)
        return self.changed > self.params.recluster_share * base


def _match(old: Sequence[Topic], new_members: Sequence[set[str]], new_cents: np.ndarray,
           min_cos: float = 0.8) -> dict[int, Topic]:
    """new cluster index -> the old topic it continues: greedy by shared files (Jaccard),
    strongest first, then by centroid cosine for what is left."""
    pairs = []
    for i, mem in enumerate(new_members):
        for t in old:
            inter = len(mem & set(t.file_ids))
            if inter:
                pairs.append((inter / len(mem | set(t.file_ids)), i, t.id))
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    by_id = {t.id: t for t in old}
    out: dict[int, Topic] = {}
    taken: set[int] = set()
    for jac, i, tid in pairs:
        if jac < 0.2 or i in out or tid in taken:
            continue
        out[i] = by_id[tid]
        taken.add(tid)
    rest = [t for t in old if t.id not in taken]
    if rest:
        oc = np.stack([t.centroid for t in rest])
        sims = new_cents @ oc.T
        cands = sorted(((float(sims[i, j]), i, j) for i in range(len(new_members))
                        for j in range(len(rest)) if i not in out), key=lambda x: (-x[0], x[1]))
        for s, i, j in cands:
            if s < min_cos or i in out or rest[j].id in taken:
                continue
            out[i] = rest[j]
            taken.add(rest[j].id)
    return out


def _build(x: np.ndarray, ids: Sequence[str], paths: Sequence[str], labels: np.ndarray,
           cent: np.ndarray, texts: Mapping[str, Sequence[str]], p: Params,
           previous: Sequence[Topic], next_id: int, parent: int | None
           ) -> tuple[list[Topic], int]:
    """Topics from cluster labels: ids matched to ``previous``, names, ranked files."""
    clusters = sorted(set(labels.tolist()) - {-1})
    members = [np.flatnonzero(labels == j).tolist() for j in clusters]
    cents = np.stack([normalise(x[m].mean(axis=0)) for m in members]) if members else cent[:0]
    matched = _match(previous, [{ids[i] for i in m} for m in members], cents)
    groups, dfs = [], []
    for m in members:
        words: list[str] = []
        df: Counter[str] = Counter()
        for i in m:
            toks = [w for body in texts.get(ids[i], ()) for w in tokens(body)]
            words += toks
            df.update(set(toks))
        groups.append(words)
        dfs.append(df)
    kw = [[w for w, _ in ws] for ws in ctfidf(groups, dfs, [len(m) for m in members],
                                               p.keywords)]
    keep: dict[int, str] = {}
    for i, old in matched.items():  # an old name stays while its words still describe the topic
        if set(old.name.split()) <= set(kw[i][: p.keywords]):
            keep[i] = old.name
    names = _unique_names(kw, p.name_words, keep)
    topics = []
    for i, m in enumerate(members):
        sims = x[m] @ cents[i]
        order = np.lexsort((np.array([paths[j] for j in m]), -sims)).tolist()
        tid = matched[i].id if i in matched else next_id
        if i not in matched:
            next_id += 1
        topics.append(Topic(tid, names[i], kw[i], [paths[m[o]] for o in order],
                            [round(float(sims[o]), 4) for o in order], cents[i],
                            [ids[m[o]] for o in order], parent=parent))
    topics.sort(key=lambda t: (-t.size, t.name))
    return topics, next_id


def fit(files: Sequence[FileVector], texts: Mapping[str, Sequence[str]],
        params: Params | None = None, previous: TopicModel | None = None) -> TopicModel:
    """Cluster ``files`` (any order: they are sorted by path) into a :class:`TopicModel`.

    ``texts`` maps file_id to chunk bodies (for names). With ``previous``, topics that continue
    an old one keep its id (and name, while it still fits); new ones get fresh ids.
    """
    p = params or Params()
    files = sorted(files, key=lambda f: f.path)
    start = previous.next_id if previous is not None else 0
    old_top = previous.topics if previous is not None else []
    if not files:
        return TopicModel([], [], p, 0, 0, start)
    x = normalise(np.stack([f.vector for f in files]))
    ids = [f.file_id for f in files]
    paths = [f.path for f in files]
    k = choose_k(len(files), p)
    init = None
    if previous is not None and previous.topics:
        # a re-fit warm-starts from the old centroids (largest topics first) and keeps the old k
        # unless the vault grew or shrank by more than a quarter
        if abs(len(files) - previous.fitted_files) <= 0.25 * max(1, previous.fitted_files):
            k = max(previous.k, len(previous.topics)) if previous.k else k
        init = np.stack([t.centroid for t in previous.topics])[:k]
    labels, cent = _cluster(x, k, p, init)
    topics, next_id = _build(x, ids, paths, labels, cent, texts, p, old_top, start, None)
    index = {fid: i for i, fid in enumerate(ids)}
    for t in topics:
        if t.size < p.sub_min:
            continue
        rows = np.array([index[f] for f in t.file_ids])
        sub = x[rows]
        old_children = next((o.children for o in old_top if o.id == t.id), [])
        split = _split(sub, t.size, p, [c.centroid for c in old_children])
        if split is None:
            continue
        t.children, next_id = _build(sub, [ids[r] for r in rows], [paths[r] for r in rows],
                                     split[0], split[1], texts, p, old_children, next_id, t.id)
    unsorted = sorted(paths[i] for i in np.flatnonzero(labels == -1))
    unsorted_ids = [ids[i] for i in np.flatnonzero(labels == -1)]
    log.info("topics: %d files -> %d topics, %d unsorted", len(files), len(topics),
             len(unsorted))
    return TopicModel(topics, unsorted, p, len(files), 0, next_id, unsorted_ids, k)


def _split(x: np.ndarray, size: int, p: Params, old: Sequence[np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray] | None:
    """Sub-topic labels and centroids for one topic's files, or None when no split is clearly
    apart. The old sub-topics are tried first (warm start), so they survive while they hold."""

    def ok(lab: np.ndarray) -> bool:
        sizes = Counter(lab.tolist())
        return len(sizes) >= 2 and min(sizes.values()) >= p.min_size

    if len(old) >= 2:
        lab, c = spherical_kmeans(x, len(old), p.seed, p.iters, p.minibatch_over, p.batch,
                                  init=np.stack(list(old)))
        if ok(lab) and simplified_silhouette(x, lab, c) >= p.sub_silhouette:
            return lab, c
    k = max(2, min(p.sub_max_k, round(math.sqrt(size))))
    lab, c = _cluster(x, k, p, outliers=False)
    if not ok(lab) or simplified_silhouette(x, lab, c) < p.sub_silhouette:
        return None
    return lab, c



def fit_store(store: Store, params: Params | None = None, previous: TopicModel | None = None,
              cache: dict[str, tuple[str, np.ndarray]] | None = None) -> TopicModel:
    """:func:`fit` over everything indexed in ``store``."""
    return fit(file_vectors(store, cache), chunk_texts(store), params, previous)


def topic_text(topic: Topic, summary: str = "") -> str:
    """The hidden ``.topic`` file: ``key: value`` lines, then the summary (see query.summary)."""
    lines = [f"topic: {topic.name}", f"id: {topic.id}", f"size: {topic.size}",
             f"keywords: {', '.join(topic.keywords)}"]
    if topic.children:
        lines.append(f"subtopics: {'; '.join(c.name for c in topic.children)}")
    if topic.scores:
        lines.append(f"cohesion: {sum(topic.scores) / len(topic.scores):.3f}")
    lines.append("central: " + "; ".join(topic.files[:5]))
    out = "\n".join(lines) + "\n"
    if summary:
        out += "\nsummary:\n" + summary.rstrip("\n") + "\n"
    return out
