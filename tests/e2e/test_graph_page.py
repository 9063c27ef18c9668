"""The graph page in a real browser: Debian's chromium, headless, loads the file:// page with
networking off. State is driven through the URL's hash (``#focus=<id>``, ``#q=<text>``), which the
page's own script reads, so ``--dump-dom`` shows exactly what a click or a search would."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from query.graph_page import Graph, render_html
from tests.unit.test_graph_page import NASTY, sample_graph

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; make test does)")
SCREENSHOT_COPY = Path("/tmp/graph-screenshot.png")


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Dom(HTMLParser):
    """The dumped DOM as a flat list of elements with their attributes and direct text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(el)
        if tag not in {"meta", "input", "line", "circle", "br", "img"}:
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data

    def by_tag(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def one(self, tag: str, **attrs: str) -> Element:
        found = [e for e in self.by_tag(tag) if all(e.attrs.get(k) == v for k, v in attrs.items())]
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


def _chromium(tmp: Path, url: str, *extra: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'profile'}",
           *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass
class Page:
    path: Path
    graph: Graph
    tmp: Path

    def dom(self, fragment: str = "") -> _Dom:
        out = _chromium(self.tmp, self.path.as_uri() + fragment, "--dump-dom")
        dom = _Dom()
        dom.feed(out)
        dom.close()
        return dom

    def screenshot(self, name: str, fragment: str = "") -> Path:
        shot = self.tmp / name
        _chromium(self.tmp, self.path.as_uri() + fragment, f"--screenshot={shot}",
                  "--window-size=1200,900", "--hide-scrollbars")
        return shot


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Page:
    tmp = tmp_path_factory.mktemp("graph")
    graph = sample_graph()
    path = tmp / "graph.html"
    path.write_text(render_html(graph, title="Study vault"), encoding="utf-8")
    return Page(path, graph, tmp)


def _neighbours(graph: Graph, node: str) -> set[str]:
    return ({e.target for e in graph.edges if e.source == node}
            | {e.source for e in graph.edges if e.target == node})


def _nodes(dom: _Dom) -> dict[str, Element]:
    return {e.attrs["data-id"]: e for e in dom.by_tag("circle") if "node" in e.classes}


def test_every_file_is_a_node_and_the_script_ran(page: Page) -> None:
    dom = page.dom()
    nodes = _nodes(dom)
    assert set(nodes) == {n.id for n in page.graph.nodes}
    assert not [e for e in nodes.values() if e.classes & {"hidden", "dim"}]
    body = dom.one("body")
    assert body.attrs["data-view"] == "all"
    assert dom.one("span", id="status").text == "30 files"
    assert len([e for e in dom.by_tag("line") if "e" in e.classes]) == len(page.graph.edges)


def test_hostile_titles_stay_text_in_the_browser(page: Page) -> None:
    dom = page.dom()
    assert not dom.by_tag("img")
    assert not dom.by_tag("b")
    assert len(dom.by_tag("script")) == 1
    titles = {e.attrs["data-title"] for e in _nodes(dom).values()}
    assert NASTY in titles


def test_focus_in_the_hash_shows_the_local_graph(page: Page) -> None:
    focus = "history/00.md"  # linked in its topic and bridged to economics
    dom = page.dom("#focus=" + quote(focus, safe=""))
    want = _neighbours(page.graph, focus) | {focus}
    assert any(i.startswith("economics/") for i in want)
    nodes = _nodes(dom)
    shown = {i for i, e in nodes.items() if "hidden" not in e.classes}
    assert shown == want
    assert "focus" in nodes[focus].classes
    body = dom.one("body")
    assert body.attrs["data-view"] == "local"
    assert body.attrs["data-focus"] == focus
    status = dom.one("span", id="status").text
    assert status == f"Local graph of \u201cFrench revolution\u201d: {len(want) - 1} neighbours"
    for line in dom.by_tag("line"):
        if "e" in line.classes:
            inside = line.attrs["data-s"] in want and line.attrs["data-t"] in want
            assert ("hidden" not in line.classes) == inside
    labels = {e.attrs["data-id"] for e in dom.by_tag("text")
              if "label" in e.classes and "hidden" not in e.classes}
    assert labels == want
    # zoomed in on the neighbourhood (the parser lowercases attribute names)
    assert dom.one("svg", id="graph").attrs["viewbox"] != "0 0 1000 750"


def test_search_in_the_hash_highlights_matching_titles(page: Page) -> None:
    dom = page.dom("#q=" + quote("REVOLUTION"))
    nodes = _nodes(dom)
    want = {n.id for n in page.graph.nodes if "revolution" in n.title.lower()}
    assert len(want) == 2
    assert {i for i, e in nodes.items() if "match" in e.classes} == want
    assert {i for i, e in nodes.items() if "dim" in e.classes} == set(nodes) - want
    assert dom.one("span", id="status").text == "30 files \u00b7 2 matching \u201cREVOLUTION\u201d"
    assert dom.one("body").attrs["data-view"] == "all"


def test_focus_on_a_hostile_id_and_an_unknown_one(page: Page) -> None:
    nasty = next(n for n in page.graph.nodes if n.title == NASTY)
    dom = page.dom("#focus=" + quote(nasty.id, safe="") + "&q=" + quote(NASTY, safe=""))
    nodes = _nodes(dom)
    assert dom.one("body").attrs["data-focus"] == nasty.id
    assert {i for i, e in nodes.items() if "match" in e.classes} == {nasty.id}
    assert not dom.by_tag("img")
    dom = page.dom("#focus=" + quote("no/such.md", safe=""))
    assert dom.one("body").attrs["data-view"] == "all"
    assert dom.one("span", id="status").text.startswith("No file with id \u201cno/such.md\u201d")
    assert not [e for e in _nodes(dom).values() if "hidden" in e.classes]


def test_screenshot_of_the_page(page: Page) -> None:
    shot = page.screenshot("graph.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a drawn graph, not a blank page
    local = page.screenshot("graph-local.png", "#focus=" + quote("history/00.md", safe=""))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:  # for a person to look at; the test's own copies stay under its tmp dir
        shutil.copyfile(shot, SCREENSHOT_COPY)
        shutil.copyfile(local, SCREENSHOT_COPY.with_name("graph-screenshot-local.png"))
    except OSError:
        pass


def test_hover_card_shows_title_path_and_summary(page: Page) -> None:
    nasty = next(n for n in page.graph.nodes if n.title == NASTY)
    dom = page.dom("#tip=" + quote(nasty.id, safe=""))
    card = dom.one("div", id="tip")
    assert card.attrs["data-id"] == nasty.id
    assert "display: block" in card.attrs["style"]
    assert dom.one("b").text == NASTY
    meta = f"{nasty.path} · economics · {nasty.degree} connections"
    assert dom.one("div", **{"class": "meta"}).text == meta
    assert dom.one("div", **{"class": "summary"}).text == nasty.summary
    assert not dom.by_tag("img")
    neighbours = _neighbours(page.graph, nasty.id)
    assert {i for i, e in _nodes(dom).items() if "hl" in e.classes} == neighbours
