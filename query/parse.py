"""Parse a ``/q`` folder name (or nested names) into a :class:`Query`.

Grammar (one folder name; nested folders each parse the same way and are ANDed):

* words are separated by spaces, ``_`` or ``-`` (so ``unpaid-invoices`` == ``unpaid invoices``);
* ``-word`` at the start of a token (after a space or ``_``, or at the start) negates it:
  ``invoices -acme``; ``-acme-corp`` negates the phrase "acme corp";
* ``key:value`` filters, case-insensitive keys. A filter token ends at the next space (or ``_``
  when it does not start the space-separated token), so a value with ``_`` needs spaces around it:

  - ``type:pdf`` / ``type:pdf,docx`` — extension, extractor doc type or document kind
    (``type:email`` == ``type:eml``, ``type:invoice``); several values are ORed;
  - ``in:Finance/Invoices`` — folder prefix, vault-relative. A FUSE name cannot hold ``/``, so
    ``in:Finance%2FInvoices`` and ``in:Finance>Invoices`` mean the same (``%xx`` is decoded, so
    ``%20`` is a space); a file path selects that file;
  - ``after:D`` / ``before:D`` — D is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; both exclude D
    itself at its own granularity (``after:2023`` starts 2024-01-01, ``before:2023-06`` ends
    2023-05-31);
  - ``k:N`` — results wanted, 1..200 (default 20); ``min:S`` — score floor in [0, 1].
* temporal phrases ("last quarter", "past two months", "Q3 2023", "in May 2023", "this year",
  "2023" at the start or end of a name or after a preposition) become a date window
  (:mod:`query.temporal`); their words leave the semantic text;
* "unpaid", "outstanding", "owed", "owe" -> status ``unpaid``; "overdue" -> ``overdue``;
  "paid" -> ``paid`` unless it is a verb ("we paid the law firm"); these words stay in the text;
* "over|above|more than|at least $N" / "under|below|less than|at most N" -> an amount range
  (``2k`` = 2000); "euros", "eur", "€", "usd", "gbp", "£", "yen"... -> a currency;
* a window right after "due" ("due in the next two weeks") is a due-date window;
* "invoices", "bills", "receipts", "contracts", "statements" -> a document-kind hint;
* a word (or words) naming a known vendor slug -> a vendor hint (unknown names only rank).

Errors: a name over 255 bytes -> :class:`NameTooLong`; control characters, bad filter values or
contradictory filters -> :class:`BadQuery` (EINVAL) with a message saying which.

Size: the whole /q grammar (words, negations, filters, status words, vendors, time
phrases and when they filter) in one place, so one reading rule cannot contradict another.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import unquote

from memexfs.errors import BadQuery
from memexfs.names import check_query
from query.temporal import Interval, find_windows, month_window

K_DEFAULT, K_MAX = 20, 200

STATUS_WORDS = {
    "unpaid": "unpaid", "outstanding": "unpaid", "owed": "unpaid", "owe": "unpaid",
    "owing": "unpaid", "overdue": "overdue", "paid": "paid",
}  # fmt: skip
# Words before "paid" that make it a verb ("we paid", "have paid"), not a document state.
_PAID_VERB_BEFORE = frozenset({
    "i", "we", "you", "they", "he", "she", "it", "have", "has", "had", "was", "were", "be",
    "been", "is", "are", "did", "much", "who", "what", "how",
})  # fmt: skip
KIND_WORDS = {
    "invoice": "invoice", "invoices": "invoice", "bill": "invoice", "bills": "invoice",
    "receipt": "receipt", "receipts": "receipt", "contract": "contract",
    "contracts": "contract", "statement": "statement", "statements": "statement",
}  # fmt: skip
TYPE_ALIASES = {
    "email": ("eml", "email"), "eml": ("eml", "email"), "mail": ("eml", "email"),
    "text": ("txt", "text"), "txt": ("txt", "text"), "markdown": ("md", "markdown"),
    "md": ("md", "markdown"), "word": ("docx", "doc"), "htm": ("html", "htm"),
    "invoices": ("invoice",), "receipts": ("receipt",), "contracts": ("contract",),
}  # fmt: skip
# Status narrowing when segments combine: overdue invoices are a subset of unpaid ones.
_STATUS_MEET = {("unpaid", "overdue"): "overdue", ("overdue", "unpaid"): "overdue"}

CURRENCY_WORDS = {
    "euro": "EUR", "euros": "EUR", "eur": "EUR", "€": "EUR", "usd": "USD", "dollar": "USD",
    "dollars": "USD", "gbp": "GBP", "sterling": "GBP", "£": "GBP", "yen": "JPY", "jpy": "JPY",
    "chf": "CHF", "cad": "CAD", "aud": "AUD",
}  # fmt: skip
_SYMBOL_CURRENCY = {"€": "EUR", "£": "GBP", "¥": "JPY"}  # "$" is USD, CAD, AUD...: no filter
_AT_LEAST = (("over",), ("above",), ("more", "than"), ("greater", "than"), ("at", "least"),
             ("exceeding",), ("min",))
_AT_MOST = (("under",), ("below",), ("less", "than"), ("at", "most"), ("cheaper", "than"),
            ("max",))
_MONEY_RE = re.compile(r"^([$€£¥])?(\d[\d,]*(?:\.\d+)?)(k)?([$€£¥])?$", re.IGNORECASE)
_FILTER_RE = re.compile(r"^(type|in|after|before|k|min):(.*)$", re.IGNORECASE)
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
_TYPE_RE = re.compile(r"^[a-z0-9.+]{1,16}$")
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>«»“”‘’"


@dataclass(frozen=True)
class Query:
    """A parsed query. Dates are inclusive; ``date_soft`` is the wider (union) reading of an
    ambiguous phrase, ``date_from``/``date_to`` the window every reading agrees on."""

    text: str
    negations: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    date_soft: tuple[date, date] | None = None
    status: str | None = None
    kinds: tuple[str, ...] = ()
    vendors: tuple[str, ...] = ()
    k: int = K_DEFAULT
    min_score: float | None = None
    raw: str = ""
    amount_min: float | None = None  # "over $2,000"
    amount_max: float | None = None  # "under 50 euros"
    currency: str | None = None  # ISO code from "in euros", "€300"
    due_from: date | None = None  # "due in the next two weeks"
    due_to: date | None = None
    today: date | None = None  # reference date ("overdue" compares due dates with it)
    explicit_dates: bool = False  # after:/before: given: the window is a hard filter
    # The date window only ranks (files in it first) instead of filtering: the phrase sits in
    # prose ("as described in 1978, ...") or filtering by it left nothing (engine fallback).
    date_hint_only: bool = False

    @property
    def phrase_dated(self) -> bool:
        """A time phrase (not ``after:``/``before:``) filters this query's document dates."""
        return (not self.explicit_dates and not self.date_hint_only
                and (self.date_soft is not None or self.date_from is not None
                     or self.date_to is not None))

    @property
    def has_filters(self) -> bool:
        return bool(self.types or self.folders or self.date_from or self.date_to
                    or self.date_soft or self.status or self.vendors or self.currency
                    or self.amount_min is not None or self.amount_max is not None
                    or self.due_from or self.due_to)


@dataclass
class _Acc:
    """Mutable accumulator while segments are parsed."""

    today: date
    known: dict[tuple[str, ...], str]
    words: list[str] = field(default_factory=list)
    negations: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    strict: Interval | None = None
    soft: Interval | None = None
    dated: bool = False
    explicit: bool = False
    status: str | None = None
    kinds: list[str] = field(default_factory=list)
    vendors: list[str] = field(default_factory=list)
    k: int = K_DEFAULT
    min_score: float | None = None
    amount_min: float | None = None
    amount_max: float | None = None
    currency: str | None = None
    due: Interval | None = None
    prose: bool = False  # some segment reads as a sentence: its time phrases only rank


def _add(xs: list[str], *values: str) -> None:
    for v in values:
        if v and v not in xs:
            xs.append(v)


def _meet(a: Interval | None, b: Interval | None) -> Interval | None:
    """Intersection; ``None`` means unbounded."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a[0], b[0]), min(a[1], b[1])


# A folder name of more words than this is a sentence or a paragraph (a pasted question, a
# description), not a keyword query: the dates in it describe the subject ("in 1978 Collier
# presented", "over the past several years") rather than ask for documents of that date.
PROSE_WORDS = 12
# Read as time phrases, these possessives mean "of our time" / "of the past" ("today's
# libraries", "yesterday's methods"), not a document date ("last week's meetings" still is one).
_FIGURATIVE_POSSESSIVE = frozenset({"today", "yesterday", "tomorrow"})
STOPWORDS = frozenset({
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no",
    "not", "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "too", "us", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "why", "will", "with", "you", "your"
})  # fmt: skip


def _norm(word: str) -> str:
    w = word.strip(_EDGE_PUNCT).lower()
    for suffix in ("'s", "’s"):
        if w.endswith(suffix):
            w = w[: -len(suffix)]
    return w


def _parse_day(key: str, value: str, today: date) -> Interval:
    m = _DATE_RE.match(value)
    if not m:
        raise BadQuery(f"{key}:{value} — expected YYYY, YYYY-MM or YYYY-MM-DD")
    y, mo, d = int(m[1]), m[2], m[3]
    try:
        if d is not None:
            day = date(y, int(mo or 0), int(d))
            return day, day
        if mo is not None:
            return month_window(y, int(mo))
        return date(y, 1, 1), date(y, 12, 31)
    except ValueError as exc:
        raise BadQuery(f"{key}:{value} — not a valid date ({exc})") from exc


def _filter(acc: _Acc, key: str, value: str) -> None:
    key = key.lower()
    if not value:
        raise BadQuery(f"{key}: needs a value")
    if key == "type":
        for v in value.lower().split(","):
            v = v.strip().lstrip(".")
            if not _TYPE_RE.match(v):
                raise BadQuery(f"type:{v} — expected an extension or type like pdf, email")
            _add(acc.types, *TYPE_ALIASES.get(v, (v,)))
    elif key == "in":
        folder = unquote(value).replace(">", "/").replace("\\", "/").strip("/")
        folder = re.sub(r"/{2,}", "/", folder)
        if not folder or any(p in (".", "..") for p in folder.split("/")):
            raise BadQuery(f"in:{value} — expected a vault-relative folder like Finance/Invoices")
        _add(acc.folders, folder)
    elif key in ("after", "before"):
        lo, hi = _parse_day(key, value, acc.today)
        window = ((hi + timedelta(days=1), date.max) if key == "after"
                  else (date.min, lo - timedelta(days=1)))
        acc.strict = _meet(acc.strict, window)
        acc.soft = _meet(acc.soft, window)
        acc.dated = acc.explicit = True
    elif key == "k":
        if not value.isdigit() or not 1 <= int(value) <= K_MAX:
            raise BadQuery(f"k:{value} — expected a whole number from 1 to {K_MAX}")
        acc.k = int(value)
    else:  # min
        try:
            score = float(value)
        except ValueError:
            score = -1.0
        if not 0.0 <= score <= 1.0:
            raise BadQuery(f"min:{value} — expected a score from 0 to 1, like min:0.3")
        acc.min_score = score


def _set_status(acc: _Acc, status: str) -> None:
    if acc.status is None or acc.status == status:
        acc.status = status
    elif (acc.status, status) in _STATUS_MEET:
        acc.status = _STATUS_MEET[(acc.status, status)]
    else:
        raise BadQuery(f"contradictory payment status: {acc.status} and {status}")


def _segment(acc: _Acc, seg: str) -> None:
    """Split one name into filters, negations and words, then read the words."""
    words: list[str] = []  # display form
    codes: set[int] = set()  # indexes of words inside an identifier like INV-2023-0417
    for chunk in seg.split():
        m = _FILTER_RE.match(chunk)
        if m:
            _filter(acc, m[1], m[2])
            continue
        for tok in chunk.split("_"):
            m = _FILTER_RE.match(tok)
            if m:
                _filter(acc, m[1], m[2])
                continue
            if tok.startswith("-"):
                neg = " ".join(_norm(p) for p in tok.split("-") if _norm(p))
                _add(acc.negations, neg)
                continue
            parts = [p for p in tok.split("-") if p.strip(_EDGE_PUNCT)]
            has_digit = [any(c.isdigit() for c in p) for p in parts]
            for j, p in enumerate(parts):
                if len(parts) > 1 and sum(has_digit) > 1 and has_digit[j]:
                    codes.add(len(words))
                words.append(p)
    norm = [_norm(w) for w in words]
    if len(norm) > PROSE_WORDS:
        acc.prose = True
    figurative = {i for i, w in enumerate(words)
                  if norm[i] in _FIGURATIVE_POSSESSIVE and _is_possessive(w)}
    drop: set[int] = set()
    for win in find_windows(norm, acc.today, is_code=codes.__contains__):
        if figurative & set(range(win.start, win.end)):
            continue
        drop.update(range(win.start, win.end))
        if win.start > 0 and norm[win.start - 1] == "due":  # a due-date window, not doc date
            acc.due = _meet(acc.due, win.wide)
            continue
        acc.strict = _meet(acc.strict, win.strict or (date.max, date.min))
        acc.soft = _meet(acc.soft, win.wide)
        acc.dated = True
    drop.update(_money(acc, norm, drop))
    for i, w in enumerate(norm):
        if i in drop:
            continue
        status = STATUS_WORDS.get(w)
        if status == "paid" and i > 0 and norm[i - 1] in _PAID_VERB_BEFORE:
            status = None
        if status:
            _set_status(acc, status)
        if w in KIND_WORDS:
            _add(acc.kinds, KIND_WORDS[w])
    _match_vendors(acc, [w for i, w in enumerate(norm) if i not in drop])
    acc.words.extend(w for i, w in enumerate(words) if i not in drop)


def _is_possessive(word: str) -> bool:
    w = word.strip(_EDGE_PUNCT).lower()
    return w.endswith(("'s", "’s"))


def _money(acc: _Acc, norm: list[str], taken: set[int]) -> set[int]:
    """Amount bounds ("over $2,000", "under 50 euros") and currencies; returns words consumed."""
    used: set[int] = set()
    for i, w in enumerate(norm):
        if i in taken:
            continue
        if w in CURRENCY_WORDS:
            _set_currency(acc, CURRENCY_WORDS[w])
        for phrases, bound in ((_AT_LEAST, "min"), (_AT_MOST, "max")):
            for ph in phrases:
                j = i + len(ph)
                if tuple(norm[i:j]) != ph or j >= len(norm):
                    continue
                m = _MONEY_RE.match(norm[j])
                if not m:
                    continue
                value = float(m[2].replace(",", "")) * (1000 if m[3] else 1)
                if bound == "min":
                    acc.amount_min = max(acc.amount_min or value, value)
                else:
                    acc.amount_max = min(acc.amount_max or value, value)
                symbol = m[1] or m[4]
                if symbol in _SYMBOL_CURRENCY:
                    _set_currency(acc, _SYMBOL_CURRENCY[symbol])
                used.update(range(i, j + 1))
    return used


def _set_currency(acc: _Acc, code: str) -> None:
    if acc.currency not in (None, code):
        raise BadQuery(f"contradictory currencies: {acc.currency} and {code}")
    acc.currency = code


def _slug_words(slug: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[^0-9a-z]+", slug.lower()) if w)


def _match_vendors(acc: _Acc, norm: list[str]) -> None:
    """Known vendors named by their full slug words, or by their first word (>= 3 letters)."""
    for slug_words, slug in acc.known.items():
        n = len(slug_words)
        full = any(tuple(norm[i : i + n]) == slug_words for i in range(len(norm) - n + 1))
        head = len(slug_words[0]) >= 3 and slug_words[0] in norm
        if full or head:
            _add(acc.vendors, slug)


def parse(segments: str | Sequence[str], today: date,
          known_vendors: Collection[str] = ()) -> Query:
    """Parse one ``/q`` name, or nested names (outermost first) that refine each other."""
    segs = [segments] if isinstance(segments, str) else list(segments)
    known = {_slug_words(v): v for v in known_vendors if _slug_words(v)}
    acc = _Acc(today=today, known=known)
    for seg in segs:
        check_query(seg)
        _segment(acc, seg)
    strict, soft = acc.strict, acc.soft
    if strict is not None and strict[0] > strict[1]:
        # The readings of one phrase do not overlap, or phrases contradict: keep the union
        # window as the filter and rank without a strict window.
        strict = None
    date_soft = soft if acc.dated and soft != strict else None
    if acc.dated and soft is not None and soft[0] > soft[1]:
        raise BadQuery("the date conditions of this query exclude every date")
    lo, hi = strict if strict is not None else (None, None)
    text = " ".join(acc.words)
    filtered = bool(acc.types or acc.folders or acc.dated or acc.status or acc.vendors
                    or acc.kinds or acc.currency or acc.amount_min is not None
                    or acc.amount_max is not None or acc.due or acc.negations)
    if not filtered:
        content = [w for w in (_norm(x) for x in acc.words) if w]
        if not content:
            raise BadQuery("the query has no words and no filters")
        if all(w in STOPWORDS for w in content):
            raise BadQuery(f"the query has only common words ({' '.join(content)})")
    return Query(
        text=text,
        negations=tuple(acc.negations),
        types=tuple(acc.types),
        folders=tuple(acc.folders),
        date_from=lo if lo is not None and lo != date.min else None,
        date_to=hi if hi is not None and hi != date.max else None,
        date_soft=date_soft,
        status=acc.status,
        kinds=tuple(acc.kinds),
        vendors=tuple(acc.vendors),
        k=acc.k,
        min_score=acc.min_score,
        amount_min=acc.amount_min,
        amount_max=acc.amount_max,
        currency=acc.currency,
        due_from=acc.due[0] if acc.due else None,
        due_to=acc.due[1] if acc.due else None,
        raw="/".join(segs),
        today=today,
        explicit_dates=acc.explicit,
        date_hint_only=acc.prose and acc.dated and not acc.explicit,
    )


def date_window(q: Query) -> tuple[date | None, date | None]:
    """The window a search must filter on: the wide reading when there is one."""
    if q.date_soft is not None:
        lo, hi = q.date_soft
        return (None if lo == date.min else lo), (None if hi == date.max else hi)
    return q.date_from, q.date_to
