"""Snippets go into a tab-separated ``.results`` line: one line, no control characters; they show
the passage that matched, not the letterhead or footer a vendor repeats in every file."""

from __future__ import annotations

from query.boilerplate import LineTable, build_table, lines, normalise
from query.snippet import snippet

LETTERHEAD = "Orbit Telecom Services, Inc. · PO Box 88120, Seattle, WA 98138"
FOOTER = ("Questions about your bill? Email noreply@orbittelecom.net. "
          "Thank you for your business.")


def _bill(month: str, amount: str) -> str:
    return (f"{LETTERHEAD}\nBill to\nDana Whitfield, 418 Larkspur Ave\n"
            f"Fiber internet 500 Mbps — {month} 2023  {amount}\nTotal amount due: {amount}\n"
            f"{FOOTER}\nPage 1 of 1")


def _table(n: int = 5) -> LineTable:
    months = ["January", "February", "March", "April", "May", "June", "July"]
    return build_table([_bill(m, f"${80 + i}.99") for i, m in enumerate(months[:n])])


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


def test_window_holding_most_query_words_wins_over_the_first_word() -> None:
    body = "fiber " + "filler " * 40 + "fiber internet outage in March " + "tail " * 40
    out = snippet(body, "fiber internet outage", width=60)
    assert "fiber internet outage" in out
    assert out.startswith("…")


def test_ties_go_to_the_words_at_the_front_of_the_query() -> None:
    body = "Class notes " + "filler " * 40 + "Neutralization: acid + base -> salt " + "x " * 60
    out = snippet(body, "neutralization and pH notes", width=60)
    assert "Neutralization" in out


def test_a_plural_query_word_finds_the_singular() -> None:
    body = "filler " * 40 + "one invoice here " + "tail " * 40
    assert "invoice" in snippet(body, "invoices", width=60)


def test_lines_repeated_across_files_are_left_out() -> None:
    table = _table()
    body = _bill("March", "$82.99")
    out = snippet(body, "internet bill", common=lambda ln: table.common(ln, 3))
    assert out.startswith("Fiber internet 500 Mbps — March 2023 $82.99")
    for boiler in ("Orbit Telecom Services", "Bill to", "Larkspur", "Questions about your bill",
                   "Thank you", "Page 1 of 1"):
        assert boiler not in out, boiler  # "bill" is a query word: the footer stays out anyway
    assert "Total amount due: $82.99" in out  # the amount differs per file: not boilerplate


def test_without_a_table_nothing_is_left_out() -> None:
    out = snippet(_bill("March", "$82.99"), "internet", width=400)
    assert LETTERHEAD in out
    assert "Page 1 of 1" in out


def test_a_repeated_line_holding_the_whole_query_stays() -> None:
    table = _table()
    out = snippet(_bill("March", "$82.99"), "thank you for your business",
                  common=lambda ln: table.common(ln, 3))
    assert "Thank you for your business." in out
    assert LETTERHEAD not in out


def test_a_body_of_boilerplate_only_is_shown_as_it_is() -> None:
    out = snippet(f"{LETTERHEAD}\n{FOOTER}", "internet", common=lambda ln: True)
    assert out.startswith("Orbit Telecom Services")


def test_line_table_counts_distinct_bodies_and_normalises_lines() -> None:
    table = _table(5)
    assert table.chunks == 5
    assert table.df("Orbit Telecom Services, Inc.") == 5  # the letterhead's first sentence
    assert table.df("  ## bill TO:  ") == 5  # case, spaces and edge punctuation do not count
    assert table.df("Questions about your bill?") == 5  # a sentence of a wrapped footer
    assert table.df("Total amount due: $82.99") == 1  # digits count
    assert table.df("") == 0
    assert table.common("Bill to", 4)
    assert not table.common("Bill to", 5)
    copies = build_table([_bill("March", "$82.99")] * 6)  # copies of one file: not boilerplate
    assert copies.chunks == 1
    assert copies.df("Bill to") == 1


def test_line_table_keeps_the_most_shared_lines_when_capped() -> None:
    bodies = [f"shared by all\nshared by some {i % 2}\nown line {i}" for i in range(6)]
    table = build_table(bodies, max_lines=1)
    assert table.df("shared by all") == 6
    assert table.df("shared by some 0") == 1  # dropped by the cap: counts as unshared
    assert build_table(bodies).df("shared by some 0") == 3


def test_lines_are_cut_at_sentence_ends_but_not_after_abbreviations() -> None:
    assert lines("Paid in full. Thank you!\n\n  \nTeacher: Mr. Delacroix\n1. Q: Define") == [
        "Paid in full.", "Thank you!", "Teacher: Mr. Delacroix", "1. Q: Define"]
    assert normalise("- **Total:** $0.00 -") == "total:** $0.00"
