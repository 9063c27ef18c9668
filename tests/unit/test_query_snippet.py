"""Snippets go into a tab-separated ``.results`` line: one line, no control characters."""

from __future__ import annotations

from query.snippet import snippet


def test_snippet_is_one_clean_line() -> None:
    body = "Ingredients\n\x7f 2 lb chicken\t\x7f 1 cup yogurt\r\n\x00done"
    out = snippet(body, "chicken")
    assert out == "Ingredients 2 lb chicken 1 cup yogurt done"


def test_long_body_is_cut_around_the_first_query_word() -> None:
    body = "filler " * 60 + "the invoice total is due " + "tail " * 60
    out = snippet(body, "invoice", width=80)
    assert "invoice" in out
    assert out.startswith("…")
    assert out.endswith("…")
    assert len(out) <= 82
