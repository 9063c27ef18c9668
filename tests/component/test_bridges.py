"""Bridges and connect() over a real Qdrant Edge store with a hashing encoder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memexfs.errors import NotFound
from memexfs.store import EdgeStore
from query.bridges import bridges, connect
from query.links import LinkGraph, parse_links
from query.topics import FileVector, Params, fit
from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder, fill

pytestmark = pytest.mark.timeout(60)

REV = "french revolution monarchy bastille louis estates bread prices taxes bankrupt"
ECO = "inflation economy prices taxes bread wages market demand supply"
DOCS = [
    ("Notes/History/french.md", [REV, "see [[linked]] for the money side"]),
    ("Notes/History/napoleon.md", [REV + " napoleon"]),  # same folder: never a bridge
    ("Notes/Economics/inflation.md", [ECO + " bread prices taxes"]),
    ("Notes/Economics/linked.md", [REV + " inflation"]),  # linked from french.md
    ("Notes/Economics/both.md", [REV + " " + ECO]),
    ("Recipes/cake.md", ["flour butter sugar oven bake whisk eggs vanilla"]),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[EdgeStore, dict[str, str], LinkGraph]]:
    store = EdgeStore(tmp_path_factory.mktemp("idx"), DIM)
    ids = fill(store, DOCS, HashEncoder())
    graph = LinkGraph()
    for path, chunks in DOCS:
        graph.set_file(path, parse_links("\n".join(chunks)))
    yield store, ids, graph
    store.close()


def test_bridges_skip_same_folder_and_linked_and_explain(
        setup: tuple[EdgeStore, dict[str, str], LinkGraph]) -> None:
    store, _, graph = setup
    found = bridges(store, "Notes/History/french.md", links=graph, floor=0.2)
    paths = [b.path for b in found]
    assert paths[0] == "Notes/Economics/both.md"
    assert "Notes/Economics/inflation.md" in paths
    assert "Notes/History/napoleon.md" not in paths  # same folder
    assert "Notes/Economics/linked.md" not in paths  # already linked
    assert "Recipes/cake.md" not in paths  # below the floor
    assert [b.score for b in found] == sorted((b.score for b in found), reverse=True)
    for b in found:
        assert b.source.path == "Notes/History/french.md"
        assert b.source.text
        assert b.target.path == b.path
        assert b.target.text
    # without the graph the linked file is a bridge again
    assert "Notes/Economics/linked.md" in [
        b.path for b in bridges(store, "Notes/History/french.md", floor=0.2)]
    with pytest.raises(NotFound):
        bridges(store, "nope.md")


def test_bridges_leave_the_own_topic(setup: tuple[EdgeStore, dict[str, str], LinkGraph]) -> None:
    store, ids, graph = setup
    enc = HashEncoder()
    vec = {p: enc.encode([" ".join(c)])[0] for p, c in DOCS}
    # a model where french.md and both.md share a topic and inflation.md is elsewhere
    groups = {"Notes/History/french.md": 0, "Notes/Economics/both.md": 0,
              "Notes/History/napoleon.md": 0, "Notes/Economics/inflation.md": 1,
              "Notes/Economics/linked.md": 1, "Recipes/cake.md": 1}
    files = []
    for p, g in groups.items():
        direction = np.eye(DIM, dtype=np.float32)[g] * 10 + vec[p]
        files.append(FileVector(ids[p], p, direction / np.linalg.norm(direction)))
    model = fit(files, {}, Params(k=2, min_size=1, outlier_cos=0.0, sub_min=100))
    assert model.top_of()["Notes/Economics/both.md"] == model.top_of()["Notes/History/french.md"]
    found = bridges(store, "Notes/History/french.md", model, graph, floor=0.2)
    assert [b.path for b in found] == ["Notes/Economics/inflation.md"]
    assert found[0].topic == model.top_of()["Notes/Economics/inflation.md"]
    same = bridges(store, "Notes/History/french.md", model, graph, floor=0.2, other_topic=False)
    assert "Notes/Economics/both.md" in [b.path for b in same]


def test_connect_ranks_files_close_to_both(
        setup: tuple[EdgeStore, dict[str, str], LinkGraph]) -> None:
    store, _, graph = setup
    found = connect(store, HashEncoder(), "french revolution monarchy bastille",
                    "inflation economy wages market", graph)
    assert found[0].path == "Notes/Economics/both.md"
    assert found[0].via is None
    assert found[0].sim_a > 0
    assert found[0].sim_b > 0
    assert found[0].why_a is not None
    assert found[0].why_b is not None
    hm = 2 * found[0].sim_a * found[0].sim_b / (found[0].sim_a + found[0].sim_b)
    assert found[0].score == pytest.approx(hm, abs=1e-3)
    assert "Recipes/cake.md" not in [c.path for c in found]


def test_connect_falls_back_to_a_chain_through_a_link(tmp_path: Path) -> None:
    enc = HashEncoder()
    store = EdgeStore(tmp_path / "idx", DIM)
    try:
        fill(store, [("a/rev.md", ["bastille monarchy louis guillotine [[money]]"]),
                     ("b/money.md", ["wages inflation market supply"]),
                     ("c/cake.md", ["flour butter sugar oven"])], enc)
        graph = LinkGraph()
        graph.set_file("a/rev.md", parse_links("[[money]]"))
        graph.set_file("b/money.md")
        found = connect(store, enc, "bastille monarchy louis", "wages inflation market", graph,
                        floor=0.3)
        assert [(c.path, c.via) for c in found] == [("a/rev.md", "b/money.md")]
        assert found[0].paths == ("a/rev.md", "b/money.md")
        assert connect(store, enc, "bastille monarchy louis", "wages inflation market",
                       None, floor=0.3) == []  # no link, no similar pair: nothing ties them
    finally:
        store.close()
