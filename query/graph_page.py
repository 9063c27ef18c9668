"""The vault as a picture: a deterministic layout and a self-contained HTML page or plain SVG.

The input is a small data model of its own (:class:`Graph` of :class:`GraphNode` and
:class:`GraphEdge`) so that whoever computes topics, links and bridges only has to fill it in.
Everything is drawn server-side: the page is one SVG plus a little inline script for the search,
the local graph of one file and hover cards. Its state lives in the URL's hash (``#focus=<id>``,
``#q=<text>``, ``#tip=<id>``), so a link — or a headless browser — can open any view. It loads
nothing from anywhere: a Content-Security-Policy of ``default-src 'none'`` makes sure of it.

Titles, paths and summaries come from users' files, so every string that reaches the markup goes
through :func:`_esc` (characters XML cannot hold are dropped first); the script reads them back
from ``data-*`` attributes and only ever writes ``textContent``.

Layout: Fruchterman–Reingold in numpy with a fixed seed, repulsion only within ``2k`` through a
uniform grid (O(n·neighbours) per step), nodes started around their topic's place on a circle and
pulled gently towards their topic's centre so topics read as regions. About 2k nodes lay out in a
couple of seconds; a bigger graph is cut to its ``max_nodes`` best-connected files (degree, then
id) and the page says how many it left out.

Size: some 280 of its lines are the page itself (its inline script and style, served
as one self-contained file with no network); the layout and data code is the rest.
"""

from __future__ import annotations

import html
import logging
import math
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

EdgeKind = Literal["link", "similar", "bridge"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("link", "similar", "bridge")

# Tableau 10 plus two: qualitative, readable on white; topic i gets PALETTE[i % 12].
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#17becf", "#8c564b", "#bcbd22",
)  # fmt: skip
UNSORTED_COLOUR = "#a0a0a0"  # topic < 0: the files no topic claims

WIDTH, HEIGHT, MARGIN = 1000.0, 750.0, 30.0
MAX_NODES = 2000
MAX_TITLE, MAX_SUMMARY = 200, 600
LABELS = 40  # the best-connected files are labelled in the full view
# How hard each kind of edge pulls in the layout: bridges join topics, so they barely pull.
_PULL: dict[str, float] = {"link": 1.0, "similar": 0.6, "bridge": 0.15}
# Springs towards the topic's centre and the frame's, in units of k so they scale with n.
_TOPIC_PULL, _GRAVITY = 10.0, 1.0
_ACROSS = 0.25

# Characters XML 1.0 cannot carry (and C1 controls): dropped before escaping. Lone surrogates
# (undecodable bytes in a file name, via surrogateescape) become U+FFFD so the name stays readable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class GraphNode:
    """One file. ``topic`` indexes :attr:`Graph.topics` (negative: unsorted)."""

    id: str
    path: str
    title: str
    topic: int
    topic_name: str = ""
    summary: str = ""
    degree: int = 0


@dataclass(frozen=True)
class GraphEdge:
    """An undirected edge; ``weight`` in [0, 1] (similarity, or 1 for a link)."""

    source: str
    target: str
    kind: EdgeKind
    weight: float = 1.0


@dataclass(frozen=True)
class Graph:
    nodes: Sequence[GraphNode]
    edges: Sequence[GraphEdge]
    topics: Mapping[int, str] = field(default_factory=dict)


class ExportError(Exception):
    """The picture cannot be written in the asked format (one line, for the CLI)."""


def topic_colour(topic: int) -> str:
    return UNSORTED_COLOUR if topic < 0 else PALETTE[topic % len(PALETTE)]


def degrees(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge]) -> dict[str, int]:
    """Distinct neighbours per node id, for callers that do not count degrees themselves."""
    ids = {n.id for n in nodes}
    nbrs: dict[str, set[str]] = {i: set() for i in ids}
    for e in edges:
        if e.source in ids and e.target in ids and e.source != e.target:
            nbrs[e.source].add(e.target)
            nbrs[e.target].add(e.source)
    return {i: len(s) for i, s in nbrs.items()}


# --- preparing the graph --------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    nodes: list[GraphNode]  # sorted by id: the layout does not depend on input order
    edges: list[GraphEdge]  # valid, deduplicated per (pair, kind), sorted
    total: int  # nodes before the cut to max_nodes


def _prepare(graph: Graph, max_nodes: int) -> _Prepared:
    by_id: dict[str, GraphNode] = {}
    for n in graph.nodes:
        if n.id in by_id:
            log.warning("graph: duplicate node id %r, keeping the first", n.id)
            continue
        by_id[n.id] = n
    total = len(by_id)
    if total > max_nodes:  # keep the best-connected files; say so on the page
        keep = sorted(by_id.values(), key=lambda n: (-n.degree, n.id))[:max_nodes]
        by_id = {n.id: n for n in keep}
    best: dict[tuple[str, str, str], GraphEdge] = {}
    dropped = 0
    for e in graph.edges:
        if e.kind not in EDGE_KINDS:
            log.warning("graph: edge kind %r is not one of %s; dropped", e.kind, EDGE_KINDS)
            continue
        if e.source == e.target or e.source not in by_id or e.target not in by_id:
            # an edge to a file cut by max_nodes is expected; to an unknown one is not
            dropped += e.source != e.target and total <= max_nodes
            continue
        a, b = sorted((e.source, e.target))
        key = (a, b, e.kind)
        w = min(1.0, max(0.0, float(e.weight))) if math.isfinite(e.weight) else 0.0
        if key not in best or w > best[key].weight:
            best[key] = GraphEdge(a, b, e.kind, w)
    if dropped:
        log.warning("graph: %d edges name files that are not in the graph", dropped)
    nodes = sorted(by_id.values(), key=lambda n: n.id)
    return _Prepared(nodes, sorted(best.values(), key=lambda e: (e.source, e.target, e.kind)),
                     total)


# --- layout ---------------------------------------------------------------------------------


def layout(graph: Graph, *, seed: int = 0, iterations: int | None = None,
           max_nodes: int = MAX_NODES) -> dict[str, tuple[float, float]]:
    """Positions in the ``WIDTH`` × ``HEIGHT`` frame, the same for the same graph and seed."""
    prep = _prepare(graph, max_nodes)
    pos = _fr_layout(prep, seed=seed, iterations=iterations)
    return {n.id: (float(x), float(y)) for n, (x, y) in zip(prep.nodes, pos, strict=True)}


def _fr_layout(prep: _Prepared, *, seed: int, iterations: int | None) -> npt.NDArray[np.float64]:
    n = len(prep.nodes)
    if n == 0:
        return np.zeros((0, 2))
    if n == 1:
        return np.array([[WIDTH / 2, HEIGHT / 2]])
    rng = np.random.default_rng(seed)
    index = {node.id: i for i, node in enumerate(prep.nodes)}
    topics = sorted({node.topic for node in prep.nodes})
    tix = np.array([topics.index(node.topic) for node in prep.nodes])
    # Work in the unit square; k is FR's ideal distance.
    k = math.sqrt(1.0 / n)
    angle = 2 * math.pi * np.arange(len(topics)) / len(topics)
    ring = 0.3 if len(topics) > 1 else 0.0
    centres = np.stack([0.5 + ring * np.cos(angle), 0.5 + ring * np.sin(angle)], axis=1)
    pos = centres[tix] + rng.normal(scale=0.08, size=(n, 2))
    src = np.array([index[e.source] for e in prep.edges], dtype=np.int64)
    dst = np.array([index[e.target] for e in prep.edges], dtype=np.int64)
    pull = np.array([_PULL[e.kind] * (0.3 + 0.7 * e.weight) for e in prep.edges])
    pull[tix[src] != tix[dst]] *= _ACROSS  # links across topics are drawn, but barely pull
    steps = iterations if iterations is not None else (150 if n <= 500 else 100)
    counts = np.bincount(tix, minlength=len(topics)).astype(np.float64)
    temp0 = 0.1
    for step in range(steps):
        disp = np.zeros((n, 2))
        i, j = _near_pairs(pos, 2 * k)
        if len(i):
            d = pos[i] - pos[j]
            dist2 = np.maximum((d * d).sum(axis=1), 1e-9)
            f = np.where(dist2 < 4 * k * k, k * k / dist2, 0.0)[:, None] * d
            disp += _scatter(i, f, n) - _scatter(j, f, n)
        if len(src):
            d = pos[src] - pos[dst]
            dist = np.sqrt((d * d).sum(axis=1))
            f = (dist / k * pull)[:, None] * d
            disp += _scatter(dst, f, n) - _scatter(src, f, n)
        # Keep topics together and the whole inside the frame.
        cx = np.stack([np.bincount(tix, pos[:, c], len(topics)) for c in (0, 1)], axis=1)
        centroid = cx / counts[:, None]
        disp += _TOPIC_PULL * k * (centroid[tix] - pos)
        disp += _GRAVITY * k * (0.5 - pos)
        temp = temp0 * (1 - step / steps) + 1e-3
        length = np.maximum(np.sqrt((disp * disp).sum(axis=1)), 1e-12)
        pos = pos + disp * (np.minimum(length, temp) / length)[:, None]
        pos = np.clip(pos, 0.0, 1.0)
    return _fit(pos)


def _scatter(idx: npt.NDArray[np.int64], vec: npt.NDArray[np.float64],
             n: int) -> npt.NDArray[np.float64]:
    """Sum rows of ``vec`` into ``n`` rows by ``idx`` (bincount: far faster than np.add.at)."""
    return np.stack([np.bincount(idx, vec[:, 0], n), np.bincount(idx, vec[:, 1], n)], axis=1)


_HALF = ((0, 0), (1, -1), (1, 0), (1, 1), (0, 1))  # each unordered pair of cells once


def _near_pairs(pos: npt.NDArray[np.float64],
                cell: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs (i, j) of points in the same or adjacent grid cells of side ``cell``."""
    c = np.floor(pos / cell).astype(np.int64) + 1
    m = int(c.max()) + 2
    key = c[:, 0] * m + c[:, 1]
    order = np.argsort(key, kind="stable")
    ukeys, start, count = np.unique(key[order], return_index=True, return_counts=True)
    out_i: list[npt.NDArray[np.int64]] = []
    out_j: list[npt.NDArray[np.int64]] = []
    for dx, dy in _HALF:
        want = key + dx * m + dy
        loc = np.minimum(np.searchsorted(ukeys, want), len(ukeys) - 1)
        src = np.nonzero(ukeys[loc] == want)[0]
        reps = count[loc[src]]
        if not len(src):
            continue
        first = np.repeat(start[loc[src]], reps)
        within = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        ii = np.repeat(src, reps)
        jj = order[first + within]
        if (dx, dy) == (0, 0):
            keep = ii < jj
            ii, jj = ii[keep], jj[keep]
        out_i.append(ii)
        out_j.append(jj)
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def _fit(pos: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Scale the layout's bounding box into the frame, keeping its aspect ratio."""
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    scale = min((WIDTH - 2 * MARGIN) / span[0], (HEIGHT - 2 * MARGIN) / span[1])
    offset = (np.array([WIDTH, HEIGHT]) - span * scale) / 2
    placed: np.ndarray = np.round((pos - lo) * scale + offset, 1)
    return placed


# --- drawing --------------------------------------------------------------------------------


def _esc(text: str, limit: int = 0) -> str:
    """Text for an HTML/SVG attribute or element: XML-safe characters, escaped quotes too."""
    clean = _SURROGATE.sub("\ufffd", _NOT_XML.sub("", text))
    if limit and len(clean) > limit:
        clean = clean[: limit - 1].rstrip() + "…"
    return html.escape(clean, quote=True)


def _radii(prep: _Prepared) -> dict[str, float]:
    """Radius by degree (square root, so area grows with it), scaled to the ideal distance."""
    n = max(1, len(prep.nodes))
    ideal = math.sqrt(WIDTH * HEIGHT / n)
    rmax = min(16.0, max(4.0, 0.3 * ideal))
    rmin = max(2.0, 0.3 * rmax)
    top = max([node.degree for node in prep.nodes] + [1])
    return {node.id: round(rmin + (rmax - rmin) * math.sqrt(max(0, node.degree) / top), 1)
            for node in prep.nodes}


def _topic_names(graph: Graph, prep: _Prepared) -> list[tuple[int, str, int]]:
    """(topic, name, files) for the legend, topics in index order, unsorted last."""
    names = dict(graph.topics)
    sizes: dict[int, int] = {}
    for node in prep.nodes:
        sizes[node.topic] = sizes.get(node.topic, 0) + 1
        if node.topic not in names:
            names[node.topic] = node.topic_name or (
                "unsorted" if node.topic < 0 else f"topic {node.topic}")
    return sorted(((t, names[t], c) for t, c in sizes.items()), key=lambda x: (x[0] < 0, x[0]))


def _svg_graph(graph: Graph, prep: _Prepared, pos: npt.NDArray[np.float64], *,
               titles: bool) -> list[str]:
    """The edge and node groups (shared by the page and the plain SVG)."""
    at = {node.id: (x, y) for node, (x, y) in zip(prep.nodes, pos, strict=True)}
    radius = _radii(prep)
    out = ['<g id="edges">']
    for e in sorted(prep.edges, key=lambda e: EDGE_KINDS.index(e.kind)):  # bridges on top
        (x1, y1), (x2, y2) = at[e.source], at[e.target]
        opacity = f' stroke-opacity="{0.25 + 0.6 * e.weight:.2f}"' if e.kind == "similar" else ""
        out.append(f'<line class="e {e.kind}" data-s="{_esc(e.source)}" data-t="{_esc(e.target)}"'
                   f' x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"{opacity}/>')
    out.append('</g><g id="nodes">')
    for node in prep.nodes:
        x, y = at[node.id]
        attrs = (f'class="node" data-id="{_esc(node.id)}"'
                 f' data-title="{_esc(node.title, MAX_TITLE)}" data-path="{_esc(node.path)}"'
                 f' data-topic="{node.topic}"'
                 f' data-topic-name="{_esc(node.topic_name)}" data-degree="{node.degree}"'
                 f' data-summary="{_esc(node.summary, MAX_SUMMARY)}"'
                 f' cx="{x}" cy="{y}" r="{radius[node.id]}" fill="{topic_colour(node.topic)}"')
        if titles:
            tip = node.title + (f" — {node.summary}" if node.summary else "")
            out.append(f"<circle {attrs}><title>{_esc(tip, MAX_TITLE + MAX_SUMMARY)}</title>"
                       "</circle>")
        else:
            out.append(f"<circle {attrs}/>")
    out.append('</g><g id="labels">')
    major = _major_labels(prep, at, radius)
    for node in prep.nodes:
        x, y = at[node.id]
        cls = "label major" if node.id in major else "label"
        if titles and node.id not in major:
            continue  # the plain SVG only carries the labels it shows
        out.append(f'<text class="{cls}" data-id="{_esc(node.id)}" x="{x}"'
                   f' y="{round(y - radius[node.id] - 3, 1)}">{_esc(node.title, 60)}</text>')
    out.append("</g>")
    return out


def _major_labels(prep: _Prepared, at: Mapping[str, tuple[float, float]],
                  radius: Mapping[str, float]) -> set[str]:
    """Up to ``LABELS`` best-connected files whose labels do not overlap (greedy by degree)."""
    placed: list[tuple[float, float, float, float]] = []
    out: set[str] = set()
    for node in sorted(prep.nodes, key=lambda n: (-n.degree, n.id)):
        if len(out) >= LABELS:
            break
        x, y = at[node.id]
        half = 3.3 * min(len(node.title), 60) + 2
        box = (x - half, y - radius[node.id] - 15, x + half, y - radius[node.id] - 1)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
               for b in placed):
            continue
        placed.append(box)
        out.add(node.id)
    return out


def _cut_note(prep: _Prepared) -> str:
    if prep.total <= len(prep.nodes):
        return ""
    return (f"showing the {len(prep.nodes)} best-connected of {prep.total} files"
            f" ({prep.total - len(prep.nodes)} left out)")


_SVG_STYLE = """
.e{stroke-linecap:round;vector-effect:non-scaling-stroke}
.e.link{stroke:#555;stroke-opacity:.55;stroke-width:1.2}
.e.similar{stroke:#8a9bb0;stroke-width:.8;stroke-dasharray:3 3}
.e.bridge{stroke:#d6336c;stroke-opacity:.8;stroke-width:1.6;stroke-dasharray:6 3}
.node{stroke:#fff;stroke-width:1;vector-effect:non-scaling-stroke}
#labels{font:11px system-ui,sans-serif}
.label{fill:#222;text-anchor:middle;pointer-events:none;
 paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
"""


def render_svg(graph: Graph, *, seed: int = 0, max_nodes: int = MAX_NODES) -> str:
    """A plain SVG (no script): nodes, edges, labels of the best-connected files, a legend."""
    prep = _prepare(graph, max_nodes)
    pos = _fr_layout(prep, seed=seed, iterations=None)
    legend = _topic_names(graph, prep)
    lh = 16
    height = HEIGHT + 20 + lh * ((len(legend) + 2) // 3 + 1)
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'
           f' viewBox="0 0 {WIDTH:g} {height:g}" width="{WIDTH:g}" height="{height:g}">',
           f"<style>{_SVG_STYLE}.lg{{font:12px system-ui,sans-serif;fill:#222}}</style>",
           f'<rect width="{WIDTH:g}" height="{height:g}" fill="#fff"/>']
    out += _svg_graph(graph, prep, pos, titles=True)
    y = HEIGHT + 10
    out.append('<g id="legend">')
    for i, (topic, name, size) in enumerate(legend):
        x, yy = 20 + (i % 3) * (WIDTH - 40) / 3, y + lh * (i // 3)
        out.append(f'<circle cx="{x + 6:g}" cy="{yy + 6:g}" r="5" fill="{topic_colour(topic)}"/>'
                   f'<text class="lg" x="{x + 16:g}" y="{yy + 10:g}">{_esc(name, 50)}'
                   f" ({size})</text>")
    yy = y + lh * ((len(legend) + 2) // 3)
    for i, kind in enumerate(EDGE_KINDS):
        x = 20 + i * 160
        out.append(f'<line class="e {kind}" x1="{x}" y1="{yy + 6}" x2="{x + 30}" y2="{yy + 6}"/>'
                   f'<text class="lg" x="{x + 36}" y="{yy + 10}">{kind}</text>')
    note = _cut_note(prep)
    if note:
        out.append(f'<text class="lg" x="{WIDTH - 20:g}" y="{yy + 10}" text-anchor="end">'
                   f"{_esc(note)}</text>")
    out.append("</g></svg>\n")
    return "\n".join(out)


_PAGE_STYLE = """
*{box-sizing:border-box}
html,body{margin:0;height:100%;font:14px system-ui,sans-serif;color:#222;background:#fafafa}
body{display:flex;flex-direction:column}
header{display:flex;gap:.8em;align-items:center;padding:.5em .8em;background:#fff;
 border-bottom:1px solid #ddd;flex-wrap:wrap}
header h1{font-size:16px;margin:0 .5em 0 0}
#q{width:18em;padding:.3em .5em;font:inherit}
#status{color:#555}
main{flex:1;display:flex;min-height:0}
#graph{flex:1;min-width:0;height:100%;background:#fff;cursor:grab}
aside{width:15em;overflow:auto;padding:.6em .8em;border-left:1px solid #ddd;background:#fff}
aside h2{font-size:13px;margin:.2em 0 .4em}
aside ul{list-style:none;margin:0 0 1em;padding:0}
aside li{display:flex;align-items:center;gap:.4em;margin:.15em 0;font-size:13px}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:50%;flex:none}
.kind{display:inline-block;width:2em;height:0;border-top:2px solid #555;flex:none}
.kind.similar{border-top:1px dashed #8a9bb0}.kind.bridge{border-top:2px dashed #d6336c}
.label{display:none}.label.major{display:inline}
body.local .label.major{display:none}body.local .label:not(.hidden){display:inline}
.hidden{display:none}
.dim{opacity:.12}
.node.match{stroke:#000;stroke-width:2.5}
.node.focus{stroke:#000;stroke-width:3}
.node.hl{stroke:#000;stroke-width:2}
.e.hl{stroke:#000;stroke-opacity:.9}
.node{cursor:pointer}
#tip{position:fixed;display:none;max-width:26em;background:#fff;border:1px solid #bbb;
 border-radius:4px;padding:.5em .7em;box-shadow:0 2px 8px rgba(0,0,0,.15);pointer-events:none;
 font-size:13px}
#tip b{display:block;margin-bottom:.2em}#tip .meta{color:#666;font-size:12px;margin-bottom:.3em}
"""

# The interaction, hand-written: state lives in location.hash (#focus=<id>&q=<text>) so that a
# headless --dump-dom of a URL shows the same state a click or a search would.
_PAGE_SCRIPT = r"""
(function () {
  "use strict";
  var svg = document.getElementById("graph");
  var full = svg.getAttribute("viewBox"), fullV = full.split(" ").map(Number);
  var labelGroup = document.getElementById("labels");
  function scaleOf(v) {  // screen pixels per user unit (preserveAspectRatio meet)
    var r = svg.getBoundingClientRect();
    return Math.min((r.width || 1) / v[2], (r.height || 1) / v[3]);
  }
  function setView(v) {  // labels keep their size on screen however far one zooms
    svg.setAttribute("viewBox", v.map(function (n) { return (+n).toFixed(1); }).join(" "));
    labelGroup.style.fontSize = (11 * scaleOf(fullV) / scaleOf(v)).toFixed(2) + "px";
  }
  var nodes = new Map(), labels = new Map(), adj = new Map(), lines = [];
  svg.querySelectorAll("circle.node").forEach(function (c) {
    nodes.set(c.dataset.id, c); adj.set(c.dataset.id, new Set());
  });
  svg.querySelectorAll("text.label").forEach(function (t) { labels.set(t.dataset.id, t); });
  svg.querySelectorAll("line.e").forEach(function (l) {
    var s = l.dataset.s, t = l.dataset.t;
    if (!adj.has(s) || !adj.has(t)) return;
    adj.get(s).add(t); adj.get(t).add(s); lines.push(l);
  });
  var q = document.getElementById("q"), status = document.getElementById("status");
  var tip = document.getElementById("tip");
  var total = nodes.size, cut = document.body.dataset.note || "";

  function readHash() {
    var st = {focus: "", q: "", tip: ""};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i < 0) return;
      var k = kv.slice(0, i), v;
      try { v = decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " ")); } catch (e) { return; }
      if (k === "focus" || k === "q" || k === "tip") st[k] = v;
    });
    return st;
  }
  function writeHash(st, replace) {
    var parts = [];
    if (st.focus) parts.push("focus=" + encodeURIComponent(st.focus));
    if (st.q) parts.push("q=" + encodeURIComponent(st.q));
    var h = parts.length ? "#" + parts.join("&") : "#";
    if (replace) location.replace(h); else location.hash = h;
  }
  function fitTo(ids) {
    if (!ids) { setView(fullV); return; }
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    ids.forEach(function (id) {
      var c = nodes.get(id), x = +c.getAttribute("cx"), y = +c.getAttribute("cy");
      var r = +c.getAttribute("r") + 40;
      x0 = Math.min(x0, x - r); y0 = Math.min(y0, y - r);
      x1 = Math.max(x1, x + r); y1 = Math.max(y1, y + r);
    });
    var minW = fullV[2] * 0.3, minH = fullV[3] * 0.3;
    var w = Math.max(x1 - x0, minW), h = Math.max(y1 - y0, minH);
    var cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    setView([cx - w / 2, cy - h / 2, w, h]);
  }
  function apply() {
    var st = readHash(), focus = st.focus && nodes.has(st.focus) ? st.focus : "";
    var needle = st.q.trim().toLowerCase();
    if (q.value.trim().toLowerCase() !== needle) q.value = st.q;
    var shown = null;
    if (focus) { shown = new Set(adj.get(focus)); shown.add(focus); }
    var matches = 0;
    nodes.forEach(function (c, id) {
      var vis = !shown || shown.has(id);
      var hit = needle && vis && c.dataset.title.toLowerCase().indexOf(needle) >= 0;
      if (hit) matches++;
      c.classList.toggle("hidden", !vis);
      c.classList.toggle("focus", id === focus);
      c.classList.toggle("match", !!hit);
      c.classList.toggle("dim", !!needle && vis && !hit && id !== focus);
      var t = labels.get(id);
      if (t) {
        t.classList.toggle("hidden", !vis);
        t.classList.toggle("dim", !!needle && !hit && id !== focus);
      }
    });
    lines.forEach(function (l) {
      var s = l.dataset.s, t = l.dataset.t;
      var vis = !shown || (shown.has(s) && shown.has(t));
      l.classList.toggle("hidden", !vis);
      l.classList.toggle("dim", !!needle && !(matchOf(s) && matchOf(t)));
    });
    document.body.classList.toggle("local", !!focus);
    document.body.dataset.view = focus ? "local" : "all";
    document.body.dataset.focus = focus;
    fitTo(shown);
    var msg;
    if (focus) {
      msg = "Local graph of \u201c" + nodes.get(focus).dataset.title + "\u201d: " +
        (shown.size - 1) + " neighbours";
    } else if (st.focus) {
      msg = "No file with id \u201c" + st.focus + "\u201d; showing all " + total + " files";
    } else {
      msg = total + " files" + (cut ? " \u2014 " + cut : "");
    }
    if (needle) msg += " \u00b7 " + matches + " matching \u201c" + st.q.trim() + "\u201d";
    status.textContent = msg;
    document.getElementById("all").disabled = !focus && !needle;
    hideTip();
    if (st.tip && nodes.has(st.tip)) {  // #tip=<id>: the hover card, without a mouse
      var c = nodes.get(st.tip), b = c.getBoundingClientRect();
      showTip(c);
      placeTip(b.right, b.bottom);
    }
  }
  function showTip(c) {
    var d = c.dataset;
    tip.replaceChildren();
    var b = document.createElement("b"); b.textContent = d.title; tip.appendChild(b);
    var m = document.createElement("div"); m.className = "meta";
    m.textContent = d.path + " \u00b7 " + d.topicName + " \u00b7 " + d.degree + " connections";
    tip.appendChild(m);
    if (d.summary) {
      var s = document.createElement("div"); s.className = "summary"; s.textContent = d.summary;
      tip.appendChild(s);
    }
    tip.style.display = "block";
    tip.dataset.id = d.id;
    adj.get(d.id).forEach(function (n) { nodes.get(n).classList.add("hl"); });
    lines.forEach(function (l) {
      if (l.dataset.s === d.id || l.dataset.t === d.id) l.classList.add("hl"); });
  }
  function placeTip(cx, cy) {
    var x = cx + 14, y = cy + 14, w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > innerWidth) x = cx - w - 14;
    if (y + h > innerHeight) y = cy - h - 14;
    tip.style.left = Math.max(0, x) + "px"; tip.style.top = Math.max(0, y) + "px";
  }
  function hideTip() {
    tip.style.display = "none"; tip.dataset.id = "";
    svg.querySelectorAll(".hl").forEach(function (e) { e.classList.remove("hl"); });
  }
  function matchOf(id) { return nodes.get(id).classList.contains("match"); }

  svg.addEventListener("click", function (ev) {
    var c = ev.target.closest("circle.node"); if (!c) return;
    var st = readHash(); st.focus = c.dataset.id; writeHash(st, false);
  });
  q.addEventListener("input", function () {
    var st = readHash(); st.q = q.value; writeHash(st, true);
  });
  document.getElementById("all").addEventListener("click", function () {
    q.value = ""; writeHash({focus: "", q: ""}, false);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { q.value = ""; writeHash({focus: "", q: ""}, false); }
  });
  svg.addEventListener("mouseover", function (ev) {
    var c = ev.target.closest("circle.node"); if (c) showTip(c);
  });
  svg.addEventListener("mousemove", function (ev) {
    if (tip.style.display === "block") placeTip(ev.clientX, ev.clientY);
  });
  svg.addEventListener("mouseout", function (ev) {
    if (ev.target.closest("circle.node")) hideTip();
  });
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var v = svg.getAttribute("viewBox").split(" ").map(Number), r = svg.getBoundingClientRect();
    var k = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    var s = Math.max(v[2] / r.width, v[3] / r.height);
    var px = v[0] + (ev.clientX - r.left - (r.width - v[2] / s) / 2) * s;
    var py = v[1] + (ev.clientY - r.top - (r.height - v[3] / s) / 2) * s;
    setView([px - (px - v[0]) * k, py - (py - v[1]) * k, v[2] * k, v[3] * k]);
  }, {passive: false});
  var drag = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.target.closest("circle.node")) return;
    drag = {x: ev.clientX, y: ev.clientY, v: svg.getAttribute("viewBox").split(" ").map(Number)};
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var r = svg.getBoundingClientRect(), s = Math.max(drag.v[2] / r.width, drag.v[3] / r.height);
    setView([drag.v[0] - (ev.clientX - drag.x) * s, drag.v[1] - (ev.clientY - drag.y) * s,
      drag.v[2], drag.v[3]]);
  });
  window.addEventListener("pointerup", function () { drag = null; });
  window.addEventListener("hashchange", apply);
  apply();
})();
"""


def render_html(graph: Graph, *, title: str = "MemexFS graph", seed: int = 0,
                max_nodes: int = MAX_NODES) -> str:
    """One self-contained page: inline SVG, style and script; fetches nothing."""
    prep = _prepare(graph, max_nodes)
    pos = _fr_layout(prep, seed=seed, iterations=None)
    note = _cut_note(prep)
    legend = "".join(
        f'<li data-topic="{t}"><span class="sw" style="background:{topic_colour(t)}"></span>'
        f"{_esc(name, 80)} ({size})</li>" for t, name, size in _topic_names(graph, prep))
    kinds = "".join(f'<li><span class="kind {k}"></span>{k}</li>' for k in EDGE_KINDS)
    svg = "\n".join(_svg_graph(graph, prep, pos, titles=False))
    csp = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
           " img-src data:; base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_esc(title)}</title>
<style>{_SVG_STYLE}{_PAGE_STYLE}</style></head>
<body data-view="all" data-focus="" data-total="{prep.total}" data-note="{_esc(note)}">
<header><h1>{_esc(title)}</h1>
<input id="q" type="search" placeholder="Search titles…" autocomplete="off" aria-label="Search">
<button id="all" type="button">Show all</button><span id="status"></span></header>
<main><svg id="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {HEIGHT:g}"
 preserveAspectRatio="xMidYMid meet" role="img" aria-label="graph of files">
{svg}
</svg>
<aside><h2>Topics</h2><ul id="legend">{legend}</ul><h2>Edges</h2><ul>{kinds}</ul>
<p style="font-size:12px;color:#666">Click a file for its local graph; Esc or
 “Show all” to go back. Wheel zooms, drag pans.</p></aside></main>
<div id="tip" role="tooltip"></div>
<script>{_PAGE_SCRIPT}</script>
</body></html>
"""


def write_graph(graph: Graph, out: Path, *, title: str = "MemexFS graph", seed: int = 0) -> None:
    """Write ``out`` by its suffix: ``.html`` page, ``.svg``, or ``.png`` (needs rsvg-convert)."""
    suffix = out.suffix.lower()
    if suffix in (".html", ".htm"):
        out.write_text(render_html(graph, title=title, seed=seed), encoding="utf-8")
    elif suffix == ".svg":
        out.write_text(render_svg(graph, seed=seed), encoding="utf-8")
    elif suffix == ".png":
        tool = shutil.which("rsvg-convert")
        if tool is None:
            raise ExportError("PNG needs rsvg-convert (Debian: apt-get install librsvg2-bin);"
                              " write a .svg or .html instead")
        done = subprocess.run([tool, "--format=png", "--zoom=2", f"--output={out}"],
                              input=render_svg(graph, seed=seed).encode(), capture_output=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            raise ExportError(f"rsvg-convert failed: {err[-1] if err else done.returncode}")
    else:
        raise ExportError(f"unknown picture format {out.suffix!r}: use .html, .svg or .png")
