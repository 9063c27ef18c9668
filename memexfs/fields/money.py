"""Amounts with their currency, and the one amount that is the document's total."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from memexfs.fields.status import _PREVIOUS

_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW",
                     "₽": "RUB", "₺": "TRY", "R$": "BRL", "C$": "CAD", "A$": "AUD",
                     "US$": "USD", "CHF": "CHF", "Fr.": "CHF", "kr": "SEK"}
_ISO_CODES = ("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "JPY", "NZD", "SEK", "NOK", "DKK", "PLN",
              "CZK", "HUF", "INR", "CNY", "HKD", "SGD", "MXN", "BRL", "ZAR")
_CUR_RE = r"(?:US\$|R\$|C\$|A\$|[$€£¥₹₩₽₺]|" + "|".join(_ISO_CODES) + r")"
_NUM_RE = r"\d{1,3}(?:[,.\u202f\u00a0 ]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_MONEY_RE = re.compile(
    rf"(?P<neg>[-−])?\s?(?P<c1>{_CUR_RE})\s?(?P<neg2>[-−])?(?P<n1>{_NUM_RE})(?!\d)"
    rf"|(?P<n2>\b{_NUM_RE})\s?(?P<c2>{_CUR_RE})(?![A-Za-z])"
)


def parse_amount(num: str) -> float | None:
    """Parse ``1,234.56`` / ``1.234,56`` / ``640,00`` / ``1 234,56`` into a float."""
    s = num.replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    if not s:
        return None
    last_dot, last_comma = s.rfind("."), s.rfind(",")
    dec = max(last_dot, last_comma)
    if dec >= 0 and len(s) - dec - 1 in (1, 2):
        whole, frac = s[:dec], s[dec + 1 :]
        whole = whole.replace(",", "").replace(".", "")
        s = f"{whole}.{frac}"
    else:
        s = s.replace(",", "").replace(".", "")
    try:
        return float(s)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Money:
    start: int
    end: int
    value: float
    currency: str


def _money(text: str) -> Iterator[_Money]:
    for m in _MONEY_RE.finditer(text):
        cur = m.group("c1") or m.group("c2")
        num = m.group("n1") or m.group("n2")
        value = parse_amount(num)
        if value is None:
            continue
        if m.group("neg") or m.group("neg2"):
            value = -value
        code = _CURRENCY_SYMBOLS.get(cur, cur.upper() if cur.upper() in _ISO_CODES else "USD")
        yield _Money(m.start(), m.end(), value, code)


# Amount labels, best first. The invoice's amount is its total, even once it is paid.
_AMOUNT_LABELS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pat + r"[ \t]*:?[ \t]*(?:\n[ \t]*)?", re.IGNORECASE))
    for name, pat in (
        ("total", r"(?<!sub)(?<!sub-)\b(?:invoice total|grand total|total amount|total)\b"
                  r"(?! amount due)(?! due)(?! paid)"),
        ("amount-due", r"\b(?:total amount due|amount due|balance due|total due|amount "
                       r"outstanding|balance of|outstanding balance|past due)\b"),
        ("amount", r"\b(?:amount|comes to|payment of|charges? of)\b"),
    )
)


def _amount(text: str) -> tuple[_Money, str] | None:
    """The document's amount: a labelled total first, then an amount due, then any amount."""
    for name, pat in _AMOUNT_LABELS:
        zero: _Money | None = None
        for m in pat.finditer(text):
            after = text[m.end() : m.end() + 30]
            mon = next(_money(after), None)
            if mon is None or mon.start > 6:
                continue
            if mon.value > 0:
                return mon, f"label:{name}"
            zero = zero or mon
        if zero is not None and name == "total":
            return zero, "label:total"
    # A paid statement whose balance is zero: the payment that settled it is the bill's amount.
    for m in re.finditer(r"\b(?:autopay|auto-pay|payment)\b[^\n]{0,80}", text, re.I):
        if _PREVIOUS.search(m.group()):
            continue
        mon = next((x for x in _money(m.group()) if abs(x.value) > 0), None)
        if mon is not None:
            return _Money(mon.start, mon.end, abs(mon.value), mon.currency), "payment-line"
    return None
