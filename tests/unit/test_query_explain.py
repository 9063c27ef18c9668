"""``.query``: how a name was read, one ``key: value`` line per understood part."""

from __future__ import annotations

from datetime import date

from query.explain import describe
from query.parse import parse

TODAY = date(2024, 1, 15)


def _lines(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_filters_and_windows_are_spelled_out() -> None:
    got = _lines(describe(parse("unpaid invoices from acme last quarter -draft", TODAY,
                                ["acme"])))
    assert got["words"] == "unpaid invoices from acme"
    assert got["excluded words"] == "draft"
    assert got["document date"] == "2023-10-01 to 2023-12-31 — time phrase (filter)"
    assert got["payment status"].startswith("unpaid")
    assert got["vendor"] == "acme"
    assert got["today"] == "2024-01-15"


def test_a_date_in_prose_is_said_to_rank_only() -> None:
    text = ("the number of databases and their online use has increased dramatically over "
            "the past several years since 1979")
    got = _lines(describe(parse(text, TODAY)))
    assert "ranks, does not filter" in got["document date"]


def test_the_engines_note_is_kept_on_one_line() -> None:
    got = _lines(describe(parse("soup", TODAY), "nothing relevant:\nbest 0.1"))
    assert got["note"] == "nothing relevant: best 0.1"


def test_min_is_said_to_floor_the_cosine() -> None:
    got = _lines(describe(parse("dentist bills min:0.4", TODAY)))
    assert got["cosine floor (min)"] == "0.4"
