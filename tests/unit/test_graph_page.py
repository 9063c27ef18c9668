"""The graph picture: user strings stay text, the layout is deterministic and readable, sizes
follow degree, and the exports write what their suffix says."""

from __future__ import annotations

import random
import re
import shutil
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from query import graph_page
from query.graph_page import (
    HEIGHT,
    WIDTH,
    ExportError,
    Graph,
    GraphEdge,
    GraphNode,
    degrees,
    layout,
    render_html,
    render_svg,
    topic_colour,
    write_graph,
)

NASTY = "</script><img src=x onerror=\"alert('t')\"> & \"quoted\" 'single' <b>bold</b>"
SUBJECTS = {
    0: ("biology", ["Photosynthesis", "Cell division", "Enzymes", "DNA replication", "Osmosis",
                    "Mitosis", "Ecology notes", "Evolution", "Proteins", "Respiration"]),
    1: ("history", ["French revolution", "Napoleon", "Industrial revolution", "Cold war",
                    "Roman empire", "Renaissance", "World war one", "Reformation", "Feudalism",
                    "Enlightenment"]),
    2: ("economics", ["Supply and demand", "Inflation", "Game theory", "Keynes", "Trade",
                      "Monopoly", "Interest rates", "GDP", "Labour markets", NASTY]),
}


def sample_graph() -> Graph:
    """30 files in 3 topics: a ring of links plus chords in each, similar edges, two bridges."""
    raw: list[tuple[str, str, int]] = []
    for topic, (_name, titles) in SUBJECTS.items():
        for i, title in enumerate(titles):
            raw.append((f"{SUBJECTS[topic][0]}/{i:02d}.md", title, topic))
    edges: list[GraphEdge] = []
    for topic in SUBJECTS:
        ids = [r[0] for r in raw if r[2] == topic]
        for i, a in enumerate(ids):
            edges.append(GraphEdge(a, ids[(i + 1) % len(ids)], "link"))
            if i % 3 == 0:
                edges.append(GraphEdge(a, ids[(i + 4) % len(ids)], "similar", 0.8))
        edges.append(GraphEdge(ids[0], ids[5], "link"))
    edges.append(GraphEdge("history/00.md", "economics/01.md", "bridge", 0.7))
    edges.append(GraphEdge("biology/03.md", "economics/02.md", "bridge", 0.6))
    deg = degrees([GraphNode(i, i, t, k) for i, t, k in raw], edges)
    nodes = [GraphNode(id=i, path=i, title=t, topic=k, topic_name=SUBJECTS[k][0],
                       summary=f"What {t} is about. {NASTY if k == 2 else ''}", degree=deg[i])
             for i, t, k in raw]
    return Graph(nodes, edges, {k: v[0] for k, v in SUBJECTS.items()})


class _Elements(HTMLParser):
    """Every start tag with its (unescaped) attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def _parse(page: str) -> _Elements:
    p = _Elements()
    p.feed(page)
    p.close()
    return p


def test_user_strings_stay_text_in_the_page() -> None:
    g = sample_graph()
    page = render_html(g, title=NASTY)
    parsed = _parse(page)
    tags = [t for t, _ in parsed.tags]
    assert "img" not in tags
    assert "b" not in tags
    assert tags.count("script") == 1
    assert page.count("</script>") == 1  # only the real end of the one inline script
    titles = {a["data-id"]: a["data-title"] for t, a in parsed.tags if t == "circle"}
    assert titles == {n.id: n.title for n in g.nodes}  # round-trips exactly
    summaries = [a["data-summary"] for t, a in parsed.tags if t == "circle"]
    assert sum(NASTY in (s or "") for s in summaries) == 10


def test_svg_is_well_formed_xml_with_hostile_and_control_characters() -> None:
    node = GraphNode("a\x00\"'<>&", "p\udcff\x0b.md", NASTY + "\x01\x1f", 0, "t<\x07>", NASTY, 1)
    other = GraphNode("b", "b.md", "B", 1, "u", "", 1)
    svg = render_svg(Graph([node, other], [GraphEdge(node.id, "b", "link")], {0: "t<>", 1: "u"}))
    root = ET.fromstring(svg.encode())  # raises on anything XML cannot hold
    ns = {"s": "http://www.w3.org/2000/svg"}
    circles = root.findall(".//s:g[@id='nodes']/s:circle", ns)
    assert [c.get("data-title") for c in circles] == [NASTY, "B"]
    assert circles[0].get("data-id") == "a\"'<>&"
    assert circles[0].get("data-path") == "p\ufffd.md"  # an undecodable byte in a file name
    assert not root.findall(".//s:img", ns)


def test_page_loads_nothing_from_anywhere() -> None:
    page = render_html(sample_graph())
    parsed = _parse(page)
    csp = [a["content"] for t, a in parsed.tags
           if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp
    assert csp[0] is not None
    assert csp[0].startswith("default-src 'none'")
    for tag, attrs in parsed.tags:
        assert "src" not in attrs, tag
        assert "href" not in attrs, tag
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert "url(" not in page
    assert "@import" not in page


def test_layout_is_deterministic_and_independent_of_input_order() -> None:
    g = sample_graph()
    first = layout(g)
    assert layout(g) == first
    rng = random.Random(7)
    nodes, edges = list(g.nodes), list(g.edges)
    rng.shuffle(nodes)
    rng.shuffle(edges)
    flipped = [GraphEdge(e.target, e.source, e.kind, e.weight) for e in edges]
    assert layout(Graph(nodes, flipped, g.topics)) == first
    assert layout(g, seed=1) != first
    assert render_html(g) == render_html(Graph(nodes, flipped, g.topics))


def test_layout_fills_the_frame_and_keeps_topics_apart() -> None:
    g = sample_graph()
    pos = layout(g)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    assert min(xs) >= 0
    assert max(xs) <= WIDTH
    assert min(ys) >= 0
    assert max(ys) <= HEIGHT
    assert max(xs) - min(xs) > WIDTH / 2 or max(ys) - min(ys) > HEIGHT / 2
    topic = {n.id: n.topic for n in g.nodes}
    same: list[float] = []
    across: list[float] = []
    ids = sorted(pos)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            d = ((pos[a][0] - pos[b][0]) ** 2 + (pos[a][1] - pos[b][1]) ** 2) ** 0.5
            (same if topic[a] == topic[b] else across).append(d)
            assert d > 5, (a, b)  # no two files on top of each other
    assert sum(same) / len(same) < 0.6 * sum(across) / len(across)


def test_node_size_grows_with_degree() -> None:
    g = sample_graph()
    root = ET.fromstring(render_svg(g).encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    r = {c.get("data-id"): float(c.get("r") or 0) for c in root.iterfind(".//s:circle[@data-id]",
                                                                          ns)}
    deg = {n.id: n.degree for n in g.nodes}
    ordered = sorted(deg, key=lambda i: deg[i])
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert (r[a] < r[b]) if deg[a] < deg[b] else r[a] == r[b], (a, b)
    fills = {c.get("fill") for c in root.iterfind(".//s:circle[@data-topic='1']", ns)}
    assert fills == {topic_colour(1)}


def test_colours_are_a_fixed_palette_and_unsorted_is_grey() -> None:
    assert topic_colour(0) != topic_colour(1)
    assert topic_colour(3) == topic_colour(3 + len(graph_page.PALETTE))
    assert topic_colour(-1) == graph_page.UNSORTED_COLOUR


def test_legend_names_every_topic_with_its_size() -> None:
    g = sample_graph()
    unsorted = GraphNode("x.md", "x.md", "Stray", -1)
    page = render_html(Graph([*g.nodes, unsorted], g.edges, g.topics))
    legend = re.search(r'<ul id="legend">(.*?)</ul>', page)
    assert legend is not None
    items = re.findall(r'<li data-topic="(-?\d+)">.*?</span>(.*?)</li>', legend.group(1))
    assert items == [("0", "biology (10)"), ("1", "history (10)"), ("2", "economics (10)"),
                     ("-1", "unsorted (1)")]


def test_bad_edges_are_dropped_and_duplicates_merged(caplog: pytest.LogCaptureFixture) -> None:
    a, b = GraphNode("a", "a", "A", 0, degree=1), GraphNode("b", "b", "B", 0, degree=1)
    edges = [GraphEdge("a", "b", "link"), GraphEdge("b", "a", "link"), GraphEdge("a", "a", "link"),
             GraphEdge("a", "ghost", "similar", 0.5), GraphEdge("a", "b", "similar", 0.4),
             GraphEdge("a", "b", "similar", 0.9)]
    svg = render_svg(Graph([a, b], edges))
    assert svg.count('class="e link"') == 1 + 1  # one edge plus the legend's sample
    assert svg.count('class="e similar"') == 1 + 1
    assert 'stroke-opacity="0.79"' in svg  # the stronger of the two similar edges
    assert "ghost" not in svg
    assert "1 edges name files that are not in the graph" in caplog.text


def test_a_big_graph_is_cut_to_its_best_connected_files_and_says_so() -> None:
    nodes = [GraphNode(f"n{i:03d}", f"n{i}.md", f"N{i}", i % 4, degree=i) for i in range(60)]
    edges = [GraphEdge(f"n{i:03d}", f"n{i + 1:03d}", "link") for i in range(59)]
    page = render_html(Graph(nodes, edges), max_nodes=20)
    ids = re.findall(r'<circle class="node" data-id="([^"]+)"', page)
    assert ids == [f"n{i:03d}" for i in range(40, 60)]
    assert "showing the 20 best-connected of 60 files (40 left out)" in page


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_graphs_render(n: int) -> None:
    nodes = [GraphNode(f"f{i}", f"f{i}", f"F{i}", 0) for i in range(n)]
    root = ET.fromstring(render_svg(Graph(nodes, [])).encode())
    assert len(root.findall(".//{http://www.w3.org/2000/svg}circle[@data-id]")) == n
    assert render_html(Graph(nodes, [])).count('<circle class="node"') == n


@pytest.mark.slow
def test_two_thousand_files_lay_out_in_a_few_seconds() -> None:
    rng = random.Random(3)
    n = 2000
    nodes = [GraphNode(f"n{i}", f"n{i}", f"N{i}", i % 8) for i in range(n)]
    edges = [GraphEdge(f"n{i}", f"n{rng.randrange(n)}", "link") for i in range(n) for _ in (0, 1)]
    start = time.perf_counter()
    pos = layout(Graph(nodes, edges))
    took = time.perf_counter() - start
    assert len(pos) == n
    assert took < 15, f"{took:.1f} s"  # about 2 s alone on this machine class; shared cores


def test_write_graph_by_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = sample_graph()
    write_graph(g, tmp_path / "g.html")
    assert (tmp_path / "g.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    write_graph(g, tmp_path / "g.svg")
    ET.fromstring((tmp_path / "g.svg").read_bytes())
    with pytest.raises(ExportError, match="unknown picture format"):
        write_graph(g, tmp_path / "g.gif")
    if shutil.which("rsvg-convert"):
        write_graph(g, tmp_path / "g.png")
        assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(graph_page.shutil, "which", lambda _name: None)
    with pytest.raises(ExportError, match="rsvg-convert"):
        write_graph(g, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
