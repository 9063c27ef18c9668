"""Temporal phrases resolve to the documented calendar/rolling windows."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.temporal import add_months, find_windows, previous_periods, quarter_window

pytestmark = pytest.mark.timeout(30)

TODAY = date(2024, 1, 15)  # a Monday


def windows(text: str, today: date = TODAY) -> list[tuple[object, object, int, int]]:
    return [(w.strict, w.wide, w.start, w.end) for w in find_windows(text.split(), today)]


def one(text: str, today: date = TODAY) -> tuple[object, object]:
    got = find_windows(text.split(), today)
    assert len(got) == 1, got
    return got[0].strict, got[0].wide


@pytest.mark.parametrize(("phrase", "lo", "hi"), [
    ("last quarter", date(2023, 10, 1), date(2023, 12, 31)),
    ("previous quarter", date(2023, 10, 1), date(2023, 12, 31)),
    ("this quarter", date(2024, 1, 1), TODAY),
    ("this year", date(2024, 1, 1), TODAY),
    ("last year", date(2023, 1, 1), date(2023, 12, 31)),
    ("last month", date(2023, 12, 1), date(2023, 12, 31)),
    ("this month", date(2024, 1, 1), TODAY),
    ("yesterday", date(2024, 1, 14), date(2024, 1, 14)),
    ("today", TODAY, TODAY),
    ("q3 2023", date(2023, 7, 1), date(2023, 9, 30)),
    ("q1 this year", date(2024, 1, 1), date(2024, 3, 31)),
    ("q2 of last year", date(2023, 4, 1), date(2023, 6, 30)),
    ("in may 2023", date(2023, 5, 1), date(2023, 5, 31)),
    ("may 2023", date(2023, 5, 1), date(2023, 5, 31)),
    ("in february", date(2023, 2, 1), date(2023, 2, 28)),
    ("in january", date(2024, 1, 1), date(2024, 1, 31)),
    ("2023", date(2023, 1, 1), date(2023, 12, 31)),
    ("last 10 days", date(2024, 1, 5), TODAY),
])
def test_unambiguous_phrases(phrase: str, lo: date, hi: date) -> None:
    strict, wide = one(phrase)
    assert strict == wide == (lo, hi)


def test_past_two_months_has_calendar_and_rolling_readings() -> None:
    strict, wide = one("past two months")
    # calendar: Nov 1 - Dec 31; rolling: Nov 15 - Jan 15
    assert strict == (date(2023, 11, 15), date(2023, 12, 31))
    assert wide == (date(2023, 11, 1), TODAY)


def test_last_week_is_ambiguous_with_monday_weeks() -> None:
    strict, wide = one("last week")
    assert strict == (date(2024, 1, 8), date(2024, 1, 14))
    assert wide == (date(2024, 1, 8), TODAY)


def test_last_3_months_digits() -> None:
    strict, wide = one("last 3 months", date(2023, 5, 31))
    assert wide == (date(2023, 2, 1), date(2023, 5, 31))
    assert strict == (date(2023, 2, 28), date(2023, 4, 30))  # Feb 28: clamped rolling start


def test_preposition_and_article_are_part_of_the_phrase() -> None:
    got = windows("bills from the past two months")
    assert len(got) == 1
    assert got[0][2:] == (1, 6)


def test_since_runs_to_today() -> None:
    assert one("since march 2023") == ((date(2023, 3, 1), TODAY),) * 2


@pytest.mark.parametrize("text", [
    "what led to the king losing power in 1789 france",  # not a plausible document year
    "my 2023 taxes",  # a year modifying a noun describes the topic
    "final q3 report",  # a quarter without a year
    "may i see it",  # bare month names stay words
    "march through the park",
])
def test_non_temporal_words_stay(text: str) -> None:
    assert find_windows(text.split(), TODAY) == []


def test_identifier_parts_are_not_years() -> None:
    words = ["inv", "2023", "0417"]
    assert find_windows(words, TODAY, is_code=lambda i: i in (1, 2)) == []


def test_add_months_clamps_day() -> None:
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2023, 12, 15), 1) == date(2024, 1, 15)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)),
       st.sampled_from(["week", "month", "quarter", "year"]), st.integers(1, 24))
def test_previous_periods_end_before_the_current_period(today: date, unit: str, n: int) -> None:
    lo, hi = previous_periods(today, unit, n)
    assert lo <= hi < today
    assert (hi.toordinal() + 1 - lo.toordinal()) >= n * (7 if unit == "week" else 28)


@given(st.integers(1990, 2100), st.integers(1, 4))
def test_quarters_tile_the_year(year: int, q: int) -> None:
    lo, hi = quarter_window(year, q)
    assert lo.month == 3 * q - 2
    assert lo.day == 1
    if q < 4:
        assert quarter_window(year, q + 1)[0].toordinal() == hi.toordinal() + 1
    else:
        assert hi == date(year, 12, 31)
