"""The ``.results`` format: one line per result, tab-separated, escaped so names can't break it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mount.virtual import (
    Hit,
    Listing,
    escape_field,
    read_cosine,
    read_fields_line,
    unescape_field,
)


@given(st.text())
def test_escape_round_trips_and_leaves_no_separators(value: str) -> None:
    escaped = escape_field(value)
    assert "\t" not in escaped
    assert "\n" not in escaped
    assert "\r" not in escaped
    assert unescape_field(escaped) == value


def test_rows_are_one_line_each_whatever_the_names() -> None:
    hits = [Hit("a\tb", "x/a\tb", 0.9, 1, "first\tsnippet\nline"),
            Hit("c\nd", "y\\z/c\nd", 0.5, 2, "second"),
            Hit("plain.md", "plain.md", 0.1, 3, "")]
    text = Listing(hits, "why\nnot", generation=1).results_text().decode()
    lines = text.splitlines()
    assert lines[0] == "# rank\tscore\tpath\tsnippet"
    assert lines[1] == "# why not"
    rows = [line.split("\t") for line in lines[2:]]
    assert [len(r) for r in rows] == [4, 4, 4]
    assert [unescape_field(r[2]) for r in rows] == ["x/a\tb", "y\\z/c\nd", "plain.md"]
    assert rows[0][3] == "first snippet line"


def test_the_cosine_goes_on_the_line_after_its_row() -> None:
    hits = [Hit("a.txt", "a.txt", 1.0, 1, "a", None, 0.4123),
            Hit("b.txt", "b.txt", 0.5, 2, "b")]
    lines = Listing(hits, None, generation=1).results_text().decode().splitlines()
    assert lines[1:] == ["1\t1.0000\ta.txt\ta", "# 1\tcosine=0.4123", "2\t0.5000\tb.txt\tb"]
    assert read_fields_line(lines[2]) == (1, None)  # no extracted field
    assert [read_cosine(line) for line in lines] == [None, None, 0.4123, None]
