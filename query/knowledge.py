"""One knowledge service behind ``topics/``, ``backlinks/``, ``bridges/``, ``connect/``,
``summary/``, the CLI and the graph page: the topic model, the link graph and summaries of one
vault, kept current as the index changes.

Thread-safe; every method may block (store scrolls, the encoder, a first fit), so the mount calls
them from worker threads only. The topic model is fitted lazily on first use, warm-started from
the one persisted in the vault's state folder (``topics.json``, 0600) so topic ids survive a
remount; index changes are queued by :meth:`Knowledge.changed` (cheap: the indexer's callback) and
applied at the next call — a new file joins its nearest topic at once — and when enough has
changed a re-fit runs in a background thread and replaces the model when done.

Size: the one service behind topics/, backlinks/, bridges/, connect/ and summary/, with
its background re-fit and cache; each answer itself lives in its own module.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memexfs.schema import INDEXED
from memexfs.store import Store
from query import bridges as bridges_mod
from query.graph_page import Graph, GraphEdge, GraphNode
from query.links import Link, LinkGraph, build_graph, read_vault_file, scan_file
from query.summary import document_text, format_summary, summarize, summarize_topic
from query.topics import (
    UNSORTED,
    UNSORTED_ID,
    Params,
    Topic,
    TopicModel,
    file_vectors,
    fit_store,
    mean_vector,
    topic_text,
)

if TYPE_CHECKING:
    from embed import Encoder

log = logging.getLogger(__name__)

MODEL_FILE = "topics.json"
MODEL_VERSION = 1
SIMILAR_COS = 0.75  # a "similar" graph edge: one of a file's two nearest files, at least this
SIMILAR_PER_FILE = 2
Visible = Callable[[str], bool]


def _everyone(path: str) -> bool:
    return True


@dataclass
class TopicFolder:
    """What one folder of ``topics/`` holds: sub-topic folders and ranked (path, score) files."""

    topic: Topic | None  # None for the root and for unsorted/
    dirs: list[str] = field(default_factory=list)
    files: list[tuple[str, float]] = field(default_factory=list)


# ---- persistence -----------------------------------------------------------------------------
def _topic_json(t: Topic) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "keywords": t.keywords, "files": t.files,
            "scores": t.scores, "file_ids": t.file_ids, "parent": t.parent,
            "centroid": [round(float(x), 6) for x in t.centroid],
            "children": [_topic_json(c) for c in t.children]}


def _topic_from(d: dict[str, Any]) -> Topic:
    return Topic(int(d["id"]), str(d["name"]), list(d["keywords"]), list(d["files"]),
                 [float(s) for s in d["scores"]], np.asarray(d["centroid"], dtype=np.float32),
                 list(d["file_ids"]), [_topic_from(c) for c in d.get("children", [])],
                 d.get("parent"))


def save_model(model: TopicModel, path: Path) -> None:
    """Write ``model`` owner-only (it names the vault's files), atomically."""
    data = {"version": MODEL_VERSION, "fitted_files": model.fitted_files,
            "changed": model.changed, "next_id": model.next_id, "k": model.k,
            "unsorted": model.unsorted, "unsorted_ids": model.unsorted_ids,
            "topics": [_topic_json(t) for t in model.topics]}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_model(path: Path, params: Params) -> TopicModel | None:
    """The persisted model, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") != MODEL_VERSION:
            return None
        return TopicModel([_topic_from(t) for t in data["topics"]], list(data["unsorted"]),
                          params, int(data["fitted_files"]), int(data["changed"]),
                          int(data["next_id"]), list(data["unsorted_ids"]), int(data["k"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("%s: unreadable topic model (%s); fitting afresh", path, exc)
        return None


# ---- the service ---------------------------------------------------------------------------
class Knowledge:
    """Topics, links, bridges and summaries of one vault (see the module doc)."""

    def __init__(self, store: Store, root: str | os.PathLike[str],
                 load_encoder: Callable[[], Encoder], state_dir: str | os.PathLike[str] | None,
                 params: Params | None = None, background: bool = True) -> None:
        self.store = store
        self.root = os.fspath(root)
        self._load_encoder = load_encoder
        self.params = params or Params()
        self.model_path = Path(state_dir) / MODEL_FILE if state_dir is not None else None
        self.background = background
        self._lock = threading.RLock()
        self._encoder: Encoder | None = None
        self._model: TopicModel | None = None
        self._graph: LinkGraph | None = None
        self._pending: set[str] = set()
        self._during_refit: set[str] | None = None
        self._refit: threading.Thread | None = None
        self._vectors: dict[str, tuple[str, np.ndarray]] = {}
        self._summaries: dict[tuple[str, str], str] = {}
        self._topic_summaries: dict[tuple[int, tuple[str, ...]], str] = {}
        self._generation = 0

    # -- state
    def generation(self) -> int:
        """Changes with every applied index change and every re-fit (listing caches key on it)."""
        return self._generation

    def ready(self) -> bool:
        """True once the model is fitted (the first fit may take a while: not a slow engine)."""
        return self._model is not None

    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load_encoder()
            return self._encoder

    def changed(self, paths: Iterable[str]) -> None:
        """The indexer changed these files (any thread; cheap: applied at the next call)."""
        with self._lock:
            self._pending.update(paths)
            if self._during_refit is not None:
                self._during_refit.update(paths)
            self._generation += 1

    def model(self) -> TopicModel:
        """The current model (fitted on first use); callers must hold no reference across
        calls: it is updated in place."""
        with self._lock:
            if self._model is None:
                previous = load_model(self.model_path, self.params) if self.model_path else None
                self._model = fit_store(self.store, self.params, previous, self._vectors)
                self._save(self._model)
                self._generation += 1
            self._apply()
            return self._model

    def links(self) -> LinkGraph:
        with self._lock:
            if self._graph is None:
                self._graph = build_graph(self.root, [r.path for r in self.store.iter_files()])
            self._apply()
            return self._graph

    def _apply(self) -> None:
        """Queued index changes into the link graph and the model (lock held)."""
        if not self._pending:
            return
        paths, self._pending = sorted(self._pending), set()
        for path in paths:
            if self._graph is not None:
                self._rescan(path)
            if self._model is not None:
                self._place(self._model, path)
        if self._model is not None and self._model.needs_recluster():
            self._start_refit()

    def _rescan(self, path: str) -> None:
        assert self._graph is not None
        if os.path.lexists(os.path.join(self.root, path)):
            scan_file(self._graph, path, lambda p, n: read_vault_file(self.root, p, n))
        else:
            self._graph.remove_file(path)

    def _place(self, model: TopicModel, path: str) -> None:
        rec = self.store.file_by_path(path)
        vec = None
        if rec is not None and rec.status == INDEXED and rec.chunks:
            vec = mean_vector(self.store.chunk_vectors(rec.file_id).values())
        if rec is None or vec is None:
            model.remove(path)
            return
        self._vectors[rec.file_id] = (rec.content_hash, vec)
        model.add(path, rec.file_id, vec)

    def _start_refit(self) -> None:
        if self._refit is not None and self._refit.is_alive():
            return
        assert self._model is not None
        previous = copy.deepcopy(self._model)
        self._during_refit = set()
        if not self.background:
            self._refit_now(previous)
            return
        self._refit = threading.Thread(target=self._refit_now, args=(previous,),
                                       name="memexfs-topics", daemon=True)
        self._refit.start()

    def _refit_now(self, previous: TopicModel) -> None:
        try:
            with self._lock:
                vectors = dict(self._vectors)
            model = fit_store(self.store, self.params, previous, vectors)
        except Exception:
            log.exception("topic re-fit failed; keeping the current topics")
            with self._lock:
                self._during_refit = None
                if self._model is not None:
                    self._model.changed = 0  # don't retry at every change
            return
        with self._lock:
            self._vectors.update(vectors)
            again = self._during_refit or set()
            self._during_refit = None
            for path in sorted(again):  # what changed while the fit ran
                self._place(model, path)
            model.changed = len(again)
            self._model = model
            self._topic_summaries.clear()
            self._generation += 1
            self._save(model)
        log.info("topics re-fitted: %d topics", len(model.topics))

    def wait_refit(self, timeout: float | None = None) -> None:
        """Return once no background re-fit runs (tests, close)."""
        thread = self._refit
        if thread is not None:
            thread.join(timeout)

    def _save(self, model: TopicModel) -> None:
        if self.model_path is None:
            return
        try:
            save_model(model, self.model_path)
        except OSError as exc:
            log.warning("%s: cannot save the topic model: %s", self.model_path, exc)

    # -- topics
    def topic(self, key: int | Sequence[str]) -> Topic | None:
        """A topic by id, or by its folder names (top-level name, then sub-topic name)."""
        with self._lock:
            found = self._find(self.model(), key)
            return copy.deepcopy(found) if found is not None else None

    @staticmethod
    def _find(model: TopicModel, key: int | Sequence[str]) -> Topic | None:
        if isinstance(key, int):
            return model.by_id(key)
        names = list(key)
        if not names or len(names) > 2:
            return None
        top = model.by_name(names[0])
        if top is None or len(names) == 1:
            return top
        return top.child(names[1])

    def topics(self) -> list[Topic]:
        """Every top-level topic (with its sub-topics), largest first: a copy."""
        with self._lock:
            return copy.deepcopy(self.model().topics)

    def unsorted(self) -> list[str]:
        with self._lock:
            return list(self.model().unsorted)

    def folder(self, names: Sequence[str], visible: Visible = _everyone) -> TopicFolder | None:
        """The ``topics/`` folder at ``names``: sub-topics (only those with a file ``visible``
        to the caller) and, in a topic without sub-topics, its files by centrality."""
        with self._lock:
            model = self.model()
            if not names:
                dirs = [t.name for t in model.topics if any(map(visible, t.files))]
                if any(map(visible, model.unsorted)):
                    dirs.append(UNSORTED)
                return TopicFolder(None, dirs)
            if tuple(names) == (UNSORTED,):
                return TopicFolder(None, [], [(p, 0.0) for p in model.unsorted])
            t = self._find(model, names)
            if t is None:
                return None
            if t.children:
                return TopicFolder(copy.deepcopy(t),
                                   [c.name for c in t.children if any(map(visible, c.files))])
            return TopicFolder(copy.deepcopy(t), [], list(zip(t.files, t.scores, strict=True)))

    def topic_text(self, names: Sequence[str], visible: Visible = _everyone) -> str:
        """The ``.topic`` file: keywords, size, central files and summary, counting only the
        files ``visible`` to the caller."""
        with self._lock:
            if tuple(names) == (UNSORTED,):
                files = [p for p in self.model().unsorted if visible(p)]
                return (f"topic: {UNSORTED}\nsize: {len(files)}\n"
                        "about: files no topic is close enough to\n")
            t = self.topic(names)
        if t is None:
            return ""
        keep = [i for i, p in enumerate(t.files) if visible(p)]
        t.files = [t.files[i] for i in keep]
        t.scores = [t.scores[i] for i in keep]
        t.file_ids = [t.file_ids[i] for i in keep]
        for c in t.children:
            c.files = [p for p in c.files if visible(p)]
        return topic_text(t, self._topic_summary(t))

    def _topic_summary(self, t: Topic) -> str:
        key = (t.id, tuple(t.files[:5]))
        with self._lock:
            hit = self._topic_summaries.get(key)
        if hit is not None:
            return hit
        docs = [(p, document_text(self.store, p, self.root)[0]) for p in t.files[:5]]
        text = format_summary(summarize_topic(docs, t.centroid, self.encoder()))
        with self._lock:
            if len(self._topic_summaries) > 4096:
                self._topic_summaries.clear()
            self._topic_summaries[key] = text
        return text

    # -- links, bridges, connections
    def backlinks(self, path: str) -> list[Link]:
        with self._lock:
            return self.links().backlinks(path)

    def bridges(self, path: str, k: int = 20) -> list[bridges_mod.Bridge]:
        """Files like ``path`` in another topic and folder, not linked to it."""
        with self._lock:
            return bridges_mod.bridges(self.store, path, self.model(), self.links(), k=k)

    def connect(self, a: str, b: str, k: int = 20) -> list[bridges_mod.Connection]:
        encoder = self.encoder()
        with self._lock:
            return bridges_mod.connect(self.store, encoder, a, b, self.links(), k=k)

    # -- summaries
    def summary(self, path: str) -> str:
        """``path``'s extractive summary (``- sentence  [path:line]`` lines), cached by content."""
        rec = self.store.file_by_path(path)
        key = (path, rec.content_hash if rec is not None else "")
        with self._lock:
            hit = self._summaries.get(key)
        if hit is not None:
            return hit
        text, _origin = document_text(self.store, path, self.root)
        out = format_summary(summarize(text, path, self.encoder())) if text else ""
        with self._lock:
            if len(self._summaries) > 20_000:
                self._summaries.clear()
            self._summaries[key] = out
        return out

    # -- the picture
    def graph(self, summaries: bool = False) -> Graph:
        """Files as nodes (coloured by top-level topic, sized by degree); edges for links,
        strong similarity (a file's nearest one or two, above ``SIMILAR_COS``) and bridges
        (similar files in another topic and folder that are not linked)."""
        with self._lock:
            model = self.model()
            links = self.links()
            top = model.top_of()
            names = {t.id: t.name for t in model.topics}
            files = file_vectors(self.store, self._vectors)
            link_edges = [GraphEdge(e.source, e.target, "link") for e in links.edges()
                          if e.source in top and e.target in top]
            linked = {(e.source, e.target) for e in link_edges}
        edges = link_edges + self._similar_edges(files, top, linked)
        deg: dict[str, set[str]] = {p: set() for p in top}
        for e in edges:
            deg[e.source].add(e.target)
            deg[e.target].add(e.source)
        nodes = [GraphNode(id=p, path=p, title=p.rsplit("/", 1)[-1], topic=tid,
                           topic_name=names.get(tid, UNSORTED),
                           summary=self.summary(p) if summaries else "", degree=len(deg[p]))
                 for p, tid in sorted(top.items())]
        return Graph(nodes, edges, names)

    @staticmethod
    def _similar_edges(files: Sequence[Any], top: dict[str, int],
                       linked: set[tuple[str, str]], block: int = 1024) -> list[GraphEdge]:
        files = [f for f in files if f.path in top]
        if len(files) < 2:
            return []
        x = np.stack([f.vector for f in files]).astype(np.float32)
        out: list[GraphEdge] = []
        seen: set[tuple[str, str]] = set()
        for s in range(0, len(files), block):
            sims = x[s:s + block] @ x.T
            for r in range(sims.shape[0]):
                i = s + r
                sims[r, i] = -1.0
                for j in np.argsort(-sims[r])[:SIMILAR_PER_FILE].tolist():
                    w = float(sims[r, j])
                    a, b = sorted((files[i].path, files[j].path))
                    if w < SIMILAR_COS or (a, b) in seen:
                        continue
                    seen.add((a, b))
                    other = (top[a] != top[b] and a.rsplit("/", 1)[0] != b.rsplit("/", 1)[0]
                             and (a, b) not in linked and (b, a) not in linked)
                    out.append(GraphEdge(a, b, "bridge" if other else "similar", round(w, 4)))
        return out

    def close(self) -> None:
        self.wait_refit(5.0)


__all__ = ["UNSORTED", "UNSORTED_ID", "Knowledge", "TopicFolder", "load_model", "save_model"]
