"""Dates in running text, dates after a label ("Invoice date:"), and the document's own date."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import PurePath

_MONTHS = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
}
_MONTHS["sept"] = 9
_MONTH_RE = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_RE = re.compile(
    r"(?P<iso>\b(?P<iy>(?:19|20)\d\d)[-/.](?P<im>\d{1,2})[-/.](?P<id>\d{1,2})\b)"
    rf"|(?P<mdy>\b(?P<mm>{_MONTH_RE})\.?\s+(?P<md>\d{{1,2}})(?:st|nd|rd|th)?,?\s+"
    r"(?P<my>(?:19|20)\d\d)\b)"
    rf"|(?P<dmy>\b(?P<dd>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm>{_MONTH_RE})\.?,?\s+"
    r"(?P<dy>(?:19|20)\d\d)\b)"
    r"|(?P<num>\b(?P<n1>\d{1,2})(?P<sep>[/.])(?P<n2>\d{1,2})(?P=sep)(?P<ny>(?:19|20)\d\d)\b)",
    re.IGNORECASE,
)
_MONTH_YEAR_RE = re.compile(rf"\b(?P<m>{_MONTH_RE})\.?\s+(?P<y>(?:19|20)\d\d)\b", re.IGNORECASE)


def _mk_date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _date_from_match(m: re.Match[str]) -> dt.date | None:
    if m.group("iso"):
        return _mk_date(int(m.group("iy")), int(m.group("im")), int(m.group("id")))
    if m.group("mdy"):
        month = _MONTHS.get(m.group("mm").lower()[:3])
        return _mk_date(int(m.group("my")), month or 0, int(m.group("md")))
    if m.group("dmy"):
        month = _MONTHS.get(m.group("dm").lower()[:3])
        return _mk_date(int(m.group("dy")), month or 0, int(m.group("dd")))
    a, b, y = int(m.group("n1")), int(m.group("n2")), int(m.group("ny"))
    if m.group("sep") == ".":  # 14.04.2023 is day-first wherever dots are used
        return _mk_date(y, b, a)
    if a > 12:  # 14/04/2023 can only be day-first
        return _mk_date(y, b, a)
    return _mk_date(y, a, b)  # US month/day, the common reading for slashes


def find_dates(text: str) -> Iterator[tuple[int, int, dt.date]]:
    """Yield (start, end, date) for every full date written in ``text``."""
    for m in _DATE_RE.finditer(text):
        d = _date_from_match(m)
        if d is not None:
            yield m.start(), m.end(), d


def _first_date(text: str) -> dt.date | None:
    return next((d for _, _, d in find_dates(text)), None)


_GAP = r"[ \t]*[:#]?[ \t]*(?:\n[ \t]*)?"  # "Label:  value" or "Label:\nvalue" (PDF table cells)

_ISSUE_LABELS = re.compile(
    r"\b(?:invoice date|date of invoice|invoice dated|issue date|date issued|issued(?: on)?|"
    r"bill date|billing date|statement date|dated|receipt date|order date|date)\b" + _GAP,
    re.IGNORECASE,
)
_DUE_LABELS = re.compile(
    r"\b(?:due date|payment due(?: date)?|due by|due on|pay by|payable by|please pay by|"
    r"due|was due on|past its)\b" + _GAP,
    re.IGNORECASE,
)
_PERIOD_RE = re.compile(
    r"\b(?:billing|service|statement) period\b[ \t]*:?[ \t]*(?:\n[ \t]*)?(?P<v>[^\n]{3,60})",
    re.IGNORECASE,
)


def _labelled_date(text: str, labels: re.Pattern[str], window: int = 40) -> (
    tuple[dt.date, int] | None
):
    for m in labels.finditer(text):
        after = text[m.end() : m.end() + window]
        dm = _DATE_RE.match(after) or _DATE_RE.search(after[:24])
        if dm is not None:
            d = _date_from_match(dm)
            if d is not None:
                return d, m.start()
    return None


def _first_dated(text: str) -> tuple[dt.date, int] | None:
    for start, _, d in find_dates(text[:2000]):
        return d, start
    return None


def _email_date(meta: dict[str, str]) -> dt.date | None:
    iso = meta.get("date_iso")
    if iso:
        try:
            return dt.datetime.fromisoformat(iso).date()
        except ValueError:
            pass
    return _first_date(meta.get("date", ""))


_DATE_LINE_RE = re.compile(r"\b(?:date|dated|on|updated|written|created|read on)\b[*:\s]*",
                           re.IGNORECASE)


def _content_date(head: str, doc_type: str, path: str) -> tuple[dt.date, str] | None:
    """A date the document gives itself: a "Date:" line near the top, a date in the file name, or
    the first date in the opening lines."""
    top = head[:1500]
    d = _labelled_date(top, _DATE_LINE_RE, window=30)
    if d:
        return d[0], "label:date"
    name = PurePath(path).name
    nd = _first_date(name.replace("_", "-"))
    if nd is not None:
        return nd, "file-name"
    first = _first_date(top[:400])
    if first is not None:
        return first, "first-date"
    return None


def _period(value: str) -> tuple[dt.date, dt.date] | None:
    dates = [d for _, _, d in find_dates(value)]
    if len(dates) >= 2:
        return dates[0], dates[1]
    m = _MONTH_YEAR_RE.search(value)
    if m:
        month = _MONTHS.get(m.group("m").lower()[:3])
        if month:
            y = int(m.group("y"))
            return dt.date(y, month, 1), dt.date(y, month, calendar.monthrange(y, month)[1])
    return None
