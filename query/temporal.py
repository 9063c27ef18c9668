"""Natural temporal phrases ("last quarter", "past two months", "in May 2023") -> date windows.

Conventions (shared with the evaluation data, and what a user would expect):

* quarters are calendar quarters; "last quarter" is the previous full calendar quarter;
* "last month" / "last year" are the previous calendar month / year;
* "next N days|weeks|months" runs from ``today`` forward (with "due": a due-date window);
* "this week|month|quarter|year" runs from the period's start to ``today`` inclusive;
* "last N weeks|months|years", "past month", "past year" and "last week" are ambiguous: the
  *calendar* reading (the N previous full periods) and the *rolling* reading (``today`` minus N
  periods up to ``today``). A :class:`Window` keeps both: ``strict`` is where the readings agree
  (rank first), ``wide`` is their union (the filter), so nothing either reading wants is lost.

Weeks start on Monday. Words must already be lower-case with punctuation stripped.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
UNITS = {
    "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
    "months": "month", "quarter": "quarter", "quarters": "quarter", "year": "year",
    "years": "year",
}  # fmt: skip
PREPOSITIONS = frozenset({"in", "from", "during", "of", "for", "over", "within", "on"})
LAST = frozenset({"last", "past", "previous", "prior"})
THIS = frozenset({"this", "current"})
NEXT = frozenset({"next", "coming", "upcoming"})
MIN_YEAR = 1970  # a bare number is a year only in [MIN_YEAR, today.year + 1]

Interval = tuple[date, date]


@dataclass(frozen=True)
class Window:
    """A resolved phrase covering ``words[start:end]``."""

    start: int
    end: int
    strict: Interval | None  # where every reading agrees (None: the readings do not overlap)
    wide: Interval  # the union of the readings

    @property
    def ambiguous(self) -> bool:
        return self.strict != self.wide


# ---- calendar arithmetic -----------------------------------------------------------------------
def month_start(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, n: int) -> date:
    """``d`` moved by ``n`` months, the day clamped to the target month's length."""
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def month_window(year: int, month: int) -> Interval:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def quarter_window(year: int, q: int) -> Interval:
    first = date(year, 3 * (q - 1) + 1, 1)
    return first, add_months(first, 3) - timedelta(days=1)


def quarter_of(d: date) -> int:
    return (d.month - 1) // 3 + 1


def period_start(d: date, unit: str) -> date:
    if unit == "week":
        return d - timedelta(days=d.weekday())
    if unit == "month":
        return month_start(d)
    if unit == "quarter":
        return quarter_window(d.year, quarter_of(d))[0]
    if unit == "year":
        return date(d.year, 1, 1)
    return d


def shift(d: date, unit: str, n: int) -> date:
    """``d`` moved by ``n`` units (negative: back in time)."""
    if unit == "day":
        return d + timedelta(days=n)
    if unit == "week":
        return d + timedelta(weeks=n)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return add_months(d, n * months)


def previous_periods(today: date, unit: str, n: int) -> Interval:
    """Calendar reading: the ``n`` full periods before the current one."""
    cur = period_start(today, unit)
    return shift(cur, unit, -n), cur - timedelta(days=1)


def rolling(today: date, unit: str, n: int) -> Interval:
    """Rolling reading: ``today`` minus ``n`` units up to ``today``."""
    return shift(today, unit, -n), today


def _window(start: int, end: int, *readings: Interval) -> Window:
    lo = max(r[0] for r in readings)
    hi = min(r[1] for r in readings)
    wide = (min(r[0] for r in readings), max(r[1] for r in readings))
    return Window(start, end, (lo, hi) if lo <= hi else None, wide)


# ---- matchers: each returns (end index, readings) for a phrase starting at ``i`` ---------------
Match = tuple[int, tuple[Interval, ...]]


def _year_at(words: Sequence[str], i: int, today: date) -> tuple[int, int] | None:
    """(year, end) for "2023", "this year", "last year" at ``i``."""
    if i < len(words) and _is_year(words[i], today):
        return int(words[i]), i + 1
    if i + 1 < len(words) and words[i + 1] == "year":
        if words[i] in THIS:
            return today.year, i + 2
        if words[i] in ("last", "previous"):
            return today.year - 1, i + 2
    return None


def _is_year(word: str, today: date) -> bool:
    return len(word) == 4 and word.isdigit() and MIN_YEAR <= int(word) <= today.year + 1


def _m_day(words: Sequence[str], i: int, today: date) -> Match | None:
    if words[i] == "today":
        return i + 1, ((today, today),)
    if words[i] == "yesterday":
        y = today - timedelta(days=1)
        return i + 1, ((y, y),)
    return None


def _m_this(words: Sequence[str], i: int, today: date) -> Match | None:
    if words[i] in THIS and i + 1 < len(words) and UNITS.get(words[i + 1]) not in (None, "day"):
        return i + 2, ((period_start(today, UNITS[words[i + 1]]), today),)
    return None


def _m_last(words: Sequence[str], i: int, today: date) -> Match | None:
    """last/past/previous [N] unit(s)."""
    if words[i] not in LAST or i + 1 >= len(words):
        return None
    j, n, counted = i + 1, 1, False
    if words[j].isdigit() or words[j] in NUMBERS:
        n = int(words[j]) if words[j].isdigit() else NUMBERS[words[j]]
        j, counted = j + 1, True
    if j >= len(words) or words[j] not in UNITS or not 1 <= n <= 120:
        return None
    unit = UNITS[words[j]]
    if unit == "day":
        return j + 1, ((shift(today, "day", -n), today),)
    calendar_reading = previous_periods(today, unit, n)
    # "last month|quarter|year" is the previous calendar period (unambiguous by convention);
    # "past month", "last week" and any explicit count have a calendar and a rolling reading.
    if not counted and unit != "week" and words[i] != "past":
        return j + 1, (calendar_reading,)
    if unit == "quarter" and not counted:
        return j + 1, (calendar_reading,)
    return j + 1, (calendar_reading, rolling(today, unit, n))


def _m_next(words: Sequence[str], i: int, today: date) -> Match | None:
    """next/coming [N] unit(s): from today forward ("due in the next two weeks")."""
    if words[i] not in NEXT or i + 1 >= len(words):
        return None
    j, n = i + 1, 1
    if words[j].isdigit() or words[j] in NUMBERS:
        n = int(words[j]) if words[j].isdigit() else NUMBERS[words[j]]
        j += 1
    if j >= len(words) or words[j] not in UNITS or not 1 <= n <= 120:
        return None
    return j + 1, ((today, shift(today, UNITS[words[j]], n)),)


def _m_quarter(words: Sequence[str], i: int, today: date) -> Match | None:
    """q1..q4 followed by a year ("Q3 2023", "Q1 this year", "q2 of last year")."""
    w = words[i]
    if len(w) != 2 or w[0] != "q" or w[1] not in "1234":
        return None
    j = i + 2 if i + 1 < len(words) and words[i + 1] == "of" else i + 1
    got = _year_at(words, j, today)
    if got is None:
        return None
    year, end = got
    return end, (quarter_window(year, int(w[1])),)


def _m_month(words: Sequence[str], i: int, today: date, after_prep: bool) -> Match | None:
    """'May 2023', 'may of last year', or 'in May' (the latest May up to today)."""
    month = MONTHS.get(words[i])
    if month is None:
        return None
    j = i + 2 if i + 1 < len(words) and words[i + 1] == "of" else i + 1
    got = _year_at(words, j, today)
    if got is not None:
        year, end = got
        return end, (month_window(year, month),)
    if after_prep and len(words[i]) > 3:  # "in may" / "in march", never bare "may"/"march"
        year = today.year if month <= today.month else today.year - 1
        return i + 1, (month_window(year, month),)
    return None


def _m_year(words: Sequence[str], i: int, today: date, after_prep: bool,
            standalone: bool) -> Match | None:
    if not _is_year(words[i], today):
        return None
    # A year inside a phrase ("my 2023 taxes") describes the topic, not the document date.
    if not (after_prep or standalone):
        return None
    y = int(words[i])
    return i + 1, ((date(y, 1, 1), date(y, 12, 31)),)


def find_windows(words: Sequence[str], today: date,
                 is_code: Callable[[int], bool] = lambda _i: False) -> list[Window]:
    """All temporal phrases in ``words`` (one segment), left to right, longest match first.

    ``is_code(i)`` says that word ``i`` is part of an identifier ("INV-2023-0417"), so it is
    never read as a year.
    """
    out: list[Window] = []
    i, n = 0, len(words)
    while i < n:
        start = i
        j = i
        if words[j] in PREPOSITIONS and j + 1 < n:
            j += 1
        if words[j] == "the" and j + 1 < n:
            j += 1
        after_prep = j > start
        since = words[start] == "since" and j + 1 < n
        if since:
            j += 1
            after_prep = True
        got: Match | None = None
        for m in (_m_day, _m_this, _m_last, _m_next, _m_quarter):
            got = m(words, j, today)
            if got:
                break
        if not got:
            got = _m_month(words, j, today, after_prep)
        if not got and not is_code(j):
            got = _m_year(words, j, today, after_prep, standalone=j in (0, n - 1))
        if got:
            end, readings = got
            if since:
                readings = tuple((r[0], today) for r in readings)
            out.append(_window(start, end, *readings))
            i = end
        else:
            i += 1
    return out
