"""Structured fields for search filters: kind, dates, amount, currency, vendor, payment status.

Rules over the extracted text, each field tagged with the rule that produced it so a wrong value can
be traced. Rules read labels ("Invoice date:", "Balance due:") and phrases, not file names, so they
work on unseen documents. Overdue depends on *today*, which is a query-time notion: we store what
the document states (paid / unpaid / overdue-as-stated) plus ``due_date``; the query layer decides.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

__all__ = [
    "FINANCIAL_KINDS",
    "extract_fields",
    "find_dates",
    "parse_amount",
    "vendor_aliases",
    "vendor_slug",
]

FINANCIAL_KINDS = frozenset(
    {"invoice", "receipt", "payment_confirmation", "payment_reminder"}
)

# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Vendor names
# --------------------------------------------------------------------------------------------

_LEGAL_SUFFIXES = {
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "llp",
    "lp", "plc", "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "ab",
    "as", "aps", "pty", "pte", "kk", "cooperative", "coop", "group", "holdings", "the", "and",
    "of", "us", "usa",
}
# Words that describe a trade rather than name a business: "Acme Cloud Hosting" is "acme".
_GENERIC_WORDS = {
    "accounting", "advisors", "agency", "airline", "airlines", "apparel", "architects", "art",
    "associates", "auto", "bakery", "bank", "bar", "billing", "books", "bookstore", "boutique",
    "brewing", "builders", "cafe", "care", "center", "centre", "clinic", "cloud", "coffee",
    "communications", "computers", "construction", "consulting", "creative", "dental", "design",
    "diner", "digital", "electric", "electronics", "energy", "engineering", "enterprises",
    "fitness",
    "foods", "furniture", "garden", "gas", "goods", "grill", "grocery", "hardware", "health",
    "healthcare", "home", "hosting", "hotel", "hotels", "industries", "insurance", "internet",
    "kitchen", "labs", "landscaping", "law", "legal", "logistics", "management", "market",
    "marketing", "media", "medical", "mobile", "motors", "mutual", "network", "networks", "office",
    "online", "optical", "outfitters", "partners", "pharmacy", "photography", "plumbing",
    "power", "print", "printing", "products", "properties", "realty", "rentals", "repair",
    "restaurant", "services", "service", "shipping", "shop", "software", "solutions", "store",
    "studio", "studios", "supplies", "supply", "systems", "technologies", "tech", "telecom",
    "transport", "travel", "utilities", "utility", "ventures", "water", "wireless", "works",
    "accounts", "receivable", "team", "customer", "support", "department", "dept", "storage",
    "data", "security", "cleaning", "catering", "moving", "rental", "parking", "events",
    "finance", "financial", "capital", "trading", "imports", "wholesale", "retail", "sons",
    "brothers", "bros", "club", "gym", "salon", "spa", "veterinary", "vet", "pet", "pets",
    "garage", "lawn", "roofing", "heating", "cooling", "hvac", "pest", "control",
}
_FREEMAIL = {"gmail", "googlemail", "yahoo", "outlook", "hotmail", "live", "icloud", "me", "aol",
             "proton", "protonmail", "gmx", "posteo", "fastmail", "mail", "web", "zoho", "yandex"}


def _words(name: str) -> list[str]:
    s = name.lower().replace("&", " and ")
    s = re.sub(r"(?<=\w)[.'’](?=\w)", "", s)  # B.V. -> bv, O'Brien -> obrien
    return re.findall(r"[^\W_]+", s)


def vendor_slug(name: str) -> str | None:
    """Normalise a business name to what a user types: ``Acme Corp.`` and ``ACME Corporation``
    both become ``acme``; ``Rose City Pharmacy`` becomes ``rosecity``.

    Legal suffixes go, then trade words (hosting, pharmacy, ...) at the end; what remains (at most
    two words) is joined. Use the same function on query text so both sides agree.
    """
    words = [w for w in _words(name) if w not in _LEGAL_SUFFIXES]
    if not words:
        return None
    # Cut at the first trade word after the first word: "Cascade Fuel & Go" stays distinctive.
    keep: list[str] = [words[0]]
    for w in words[1:]:
        if w in _GENERIC_WORDS or len(keep) >= 2:
            break
        keep.append(w)
    slug = "".join(keep)
    return slug or None


def vendor_aliases(name: str) -> list[str]:
    """Other spellings a filter may match: the first word and the full slug."""
    words = [w for w in _words(name) if w not in _LEGAL_SUFFIXES]
    out: list[str] = []
    for cand in (vendor_slug(name), words[0] if words else None, "".join(words) or None):
        if cand and cand not in out:
            out.append(cand)
    return out


def _domain_org(addr: str) -> str | None:
    """``billing@acmecloudhosting.com`` -> ``acme``: the domain's main label, trade words peeled
    off its end (domain labels have no spaces to split on)."""
    domain = addr.rpartition("@")[2].lower()
    labels = [x for x in domain.split(".") if x]
    if len(labels) < 2:
        return None
    label = labels[-2]
    if label in {"co", "com", "org", "net", "ac", "gov", "edu"} and len(labels) >= 3:
        label = labels[-3]
    if label in {"example", "localhost"} and len(labels) >= 3:
        label = labels[-3]
    label = label.replace("-", "")
    if label in _FREEMAIL:
        return None
    changed = True
    while changed:
        changed = False
        for w in sorted(_GENERIC_WORDS | _LEGAL_SUFFIXES, key=len, reverse=True):
            if len(w) >= 3 and label.endswith(w) and len(label) - len(w) >= 3:
                label = label[: -len(w)]
                changed = True
                break
    return label or None


# --------------------------------------------------------------------------------------------
# Kind
# --------------------------------------------------------------------------------------------

_INVOICE_LABEL_RE = re.compile(
    r"\binvoice\s*(?:#|no\.?|number|num\.?)\s*:?|\binvoice date\b|\bstatement date\b|"
    r"\bdate of invoice\b|\bissue date\b|\bpayment due\b|\binvoice total\b|\btotal due\b|"
    r"\btax invoice\b|\bservice period\b|\baccount (?:no|number|#)|"
    r"\bbilling period\b|\bbill to\b|\bamount due\b|\bbalance due\b|\bdue date\b",
    re.IGNORECASE,
)
_CONTRACT_RE = re.compile(
    r"\b(?:agreement|terms of service|service level|non-disclosure|nda\b|lease\b|hereby|"
    r"the parties|party agrees|effective date|governing law|termination|cancellation|"
    r"confidential information|landlord|tenant|term of this)",
    re.IGNORECASE,
)
_RECEIPT_RE = re.compile(
    r"\b(?:receipt|order\s*(?:#|no\.?|number)|thank you for (?:shopping|your (?:order|purchase))|"
    r"thanks for your order|here'?s what you bought|cashier|change due|"
    r"(?:visa|amex|mastercard|mc|debit)\s*\*{2,}\d{4}|\bcash\b)",
    re.IGNORECASE,
)
_CONFIRM_RE = re.compile(
    r"\b(?:payment (?:confirmation|processed|received)|we (?:have )?received your payment|"
    r"(?:was|has been) applied to invoice|this confirms that your .{0,40}payment|"
    r"your balance is now zero|thank you for your payment)",
    re.IGNORECASE,
)
_REMINDER_RE = re.compile(
    r"\b(?:reminder|second notice|final notice|past due notice|upcoming due date|is due soon|"
    r"remains open|payable by|records show a balance|overdue notice)",
    re.IGNORECASE,
)
_MARKETING_RE = re.compile(
    r"\b(?:newsletter|product update|unsubscribe|this week only|% off|sale ends|"
    r"new features|changelog|promo code|special offer)",
    re.IGNORECASE,
)

_KIND_BY_DOC_TYPE = {"code": "code", "csv": "spreadsheet", "json": "data"}
_NOTE_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pat, re.IGNORECASE))
    for kind, pat in (
        ("recipe", r"\b(?:ingredients|preheat|tablespoons?|tbsp|tsp|teaspoons?|servings|simmer|"
                   r"ingrédients|préparation|bake|oven)\b"),
        ("meeting_notes", r"\b(?:attendees|agenda|action items|decisions|next steps|meeting)\b"),
        ("travel", r"\b(?:itinerary|flight|boarding|hotel|check-in|check-out|e-ticket|booking|"
                   r"reservation|departure|arrival)\b"),
        ("paper_summary", r"\b(?:authors?|published|abstract|the paper|this paper|methods|"
                          r"limitations|findings|takeaways)\b"),
        ("study_notes", r"\b(?:lecture|syllabus|exam|midterm|flashcards?|quiz|homework|"
                        r"define|definition|study guide|review)\b"),
        ("journal", r"\b(?:dear diary|journal|today i|i felt|grateful)\b"),
        ("tax", r"\b(?:tax year|1099|w-2|irs|deductions?|estimated tax|tax return)\b"),
        ("insurance", r"\b(?:policy|premium|coverage|insured|deductible|renewal)\b"),
        ("health", r"\b(?:patient|treatment|diagnosis|prescription|dental|clinic)\b"),
        ("report", r"\b(?:report|executive summary|quarterly|kpis?|highlights|metrics)\b"),
    )
)
# Folder names people file things under; a hint when the content alone is undecided.
_PATH_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pat, re.IGNORECASE))
    for kind, pat in (
        ("recipe", r"recipes?|cooking|cookbook"),
        ("journal", r"journal|diary"),
        ("meeting_notes", r"meetings?|minutes"),
        ("travel", r"travel|trips?|vacation"),
        ("study_notes", r"school|class(?:es)?|courses?|lectures?|university|college|study"),
        ("tax", r"tax(?:es)?"),
        ("paper_summary", r"papers|research|reading"),
        ("health", r"health|medical"),
        ("insurance", r"insurance"),
        ("contract", r"contracts?|agreements?|legal"),
        ("report", r"reports?"),
    )
)


def _hinted_kind(head: str, path: str, *, folder_only: bool = False) -> tuple[str, str] | None:
    scores = {k: len({m.group().lower() for m in p.finditer(head[:4000])}) for k, p in _NOTE_HINTS}
    best = max(scores, key=lambda k: scores[k])
    folders = [part for part in PurePath(path).parts[:-1]]
    for kind, pat in _PATH_HINTS:
        if any(pat.fullmatch(part) for part in folders) and scores.get(kind, 0) >= 1:
            return kind, f"folder+words:{kind}"
    if scores[best] >= 2 and not folder_only:
        return best, f"words:{best}"
    for kind, pat in _PATH_HINTS:
        if any(pat.fullmatch(part) for part in folders):
            return kind, f"folder:{kind}"
    return None


def _classify(text: str, head: str, doc_type: str, meta: dict[str, str], path: str) -> (
    tuple[str, str]
):
    """Return (kind, rule). ``head`` is the part that describes the document itself: for an e-mail
    its subject and body without attachments; otherwise the first lines."""
    if doc_type in _KIND_BY_DOC_TYPE:
        kind = _KIND_BY_DOC_TYPE[doc_type]
        if kind == "spreadsheet":
            if re.search(r"\binvoice", head[:400], re.I) and re.search(
                r"\bstatus\b|\bdue\b", head[:400], re.I
            ):
                return "invoice_register", "csv-invoice-columns"
            hinted = _hinted_kind(head, path, folder_only=True)
            if hinted:
                return hinted
        return kind, f"doc_type:{doc_type}"
    subject = meta.get("subject", "") if doc_type == "email" else ""
    labels = len({m.group().lower() for m in _INVOICE_LABEL_RE.finditer(head)})
    has_money = any(True for _ in _money(head))
    is_email = doc_type == "email"
    if is_email:
        if _MARKETING_RE.search(head):
            return "email", "email-marketing"
        if re.search(r"\b(?:second|final) notice\b|\breminder\b|\bupcoming due date\b|"
                     r"\bdue soon\b", subject, re.I):
            return "payment_reminder", "email-subject-reminder"
        if _CONFIRM_RE.search(subject) or re.search(r"payment processed|payment confirmation",
                                                    subject, re.I):
            return "payment_confirmation", "email-subject-confirmation"
        if re.search(r"\binvoice\b|\bbill\b|\bstatement\b", subject, re.I) and has_money:
            return "invoice", "email-subject-invoice"
        if _CONFIRM_RE.search(head) and has_money and re.search(r"\binvoice\b", head, re.I):
            return "payment_confirmation", "email-body-confirmation"
        if _REMINDER_RE.search(head) and has_money and re.search(r"\binvoice\b", head, re.I):
            return "payment_reminder", "email-body-reminder"
        if _RECEIPT_RE.search(head) and has_money and re.search(r"\btotal\b", head, re.I):
            return "receipt", "email-receipt"
        if labels >= 2 and has_money:
            return "invoice", "email-invoice-labels"
        if len({m.group().lower() for m in _NOTE_HINTS[2][1].finditer(head)}) >= 2:
            return "travel", "email-words:travel"
        return "email", "doc_type:email"
    top = head[:300]
    if _CONTRACT_RE.search(top) and labels < 2:
        return "contract", "contract-words"
    if labels >= 2 and has_money and re.search(r"\binvoice|\bbill\b|\bstatement\b", head, re.I):
        if re.search(r"\bnot a bill\b|\bestimate only\b|\bquote\b|\bquotation\b", head, re.I):
            return "estimate", "estimate-words"
        return "invoice", "invoice-labels"
    travel = len({m.group().lower() for m in _NOTE_HINTS[2][1].finditer(head)})
    if travel >= 2:
        return "travel", "words:travel"
    if _RECEIPT_RE.search(head) and has_money and re.search(r"\btotal\b", head, re.I):
        return "receipt", "receipt-words"
    if len(_CONTRACT_RE.findall(head)) >= 2:
        return "contract", "contract-words"
    hinted = _hinted_kind(head, path)
    if hinted:
        return hinted
    if doc_type in {"markdown", "text"}:
        return "note", f"doc_type:{doc_type}"
    return "document", f"doc_type:{doc_type}"


# --------------------------------------------------------------------------------------------
# Labelled values
# --------------------------------------------------------------------------------------------

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
_INVNO_RE = re.compile(
    r"\b(?i:invoice|bill|statement)\s*(?i:#|no\.?|number|num\.?|id)?\s*:?[ \t]*(?:\n[ \t]*)?"
    r"(?P<no>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,}[A-Z0-9])\b",
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


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------

_PREVIOUS = re.compile(r"\b(?:previous|prior|last (?:month|bill|statement|period))\b", re.I)
_STATUS_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (status, name, re.compile(pat, re.IGNORECASE))
    for status, name, pat in (
        ("overdue", "stated-overdue", r"\bstatus:?\s*overdue\b|^\s*overdue\b|\boverdue\s*[-—:]"),
        ("overdue", "past-due", r"\bpast due\b(?!\s*(?:may|accounts|invoices))|\bdays (?:late|"
                                r"overdue|past due)\b"),
        ("overdue", "notice", r"\b(?:second|final|third) notice\b|\bhas not been received\b|"
                              r"\bremains (?:open|unpaid|outstanding) past\b"),
        ("paid", "stated-paid", r"\bpaid in full\b|\bstatus:?\s*paid\b|^\s*paid\b"),
        ("paid", "payment-received", r"\bpayment received\b|\bwe (?:have )?received your payment"
                                     r"|\bthank you for your payment\b|\bpayment processed\b"),
        ("paid", "paid-on", r"\bpaid on\b|\bpaid (?:by|via|with)\b"),
        ("paid", "zero-due", r"\b(?:amount|balance|total amount) due:?\s*[$€£]?\s*0(?:[.,]00)?\b"
                             r"|\bbalance is now zero\b"),
        ("paid", "applied", r"\bapplied to invoice\b|\bthis confirms that your\b"),
        ("unpaid", "not-received", r"\bpayment (?:has )?not (?:yet )?(?:been )?received\b|"
                                   r"\bnot yet paid\b"),
        ("unpaid", "stated-unpaid", r"\bstatus:?\s*(?:unpaid|open|outstanding)\b|"
                                    r"\binvoice is (?:unpaid|open|outstanding)\b"),
        ("unpaid", "outstanding", r"\bamount outstanding\b|\boutstanding balance\b|"
                                  r"\bplease pay by\b|\bpayable by\b|\brecords show a balance\b"),
        ("unpaid", "balance-due", r"\bbalance due:?\s*[$€£]?\s*[1-9]|\btotal due\s*[$€£]?\s*[1-9]"
                                  r"|\bamount due:?\s*[$€£]?\s*[1-9]"),
    )
)


# Phrases that may be about an earlier bill ("Payment received - thank you" on a statement that
# carries a new balance) or printed before a payment stamp; they lose to any firmer statement.
_WEAK = {"payment-received", "balance-due"}


def _status(text: str) -> tuple[str, str] | None:
    """What the document says about payment. A phrase about a *previous* bill does not count:
    utility statements thank you for last month's payment while this one is open."""
    last: dict[str, tuple[int, str]] = {}  # status (+ "-weak") -> (position, rule)
    for status, name, pat in _STATUS_RULES:
        for m in pat.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            if _PREVIOUS.search(line):
                continue
            key = status + ("-weak" if name in _WEAK else "")
            if key not in last or m.start() > last[key][0]:
                last[key] = (m.start(), name)
    strong = [(pos, k, rule) for k, (pos, rule) in last.items() if not k.endswith("-weak")]
    if "overdue" in last and not any(k == "paid" and pos > last["overdue"][0]
                                     for pos, k, _ in strong):
        return "overdue", last["overdue"][1]  # unless a later stamp says it was paid after all
    if strong:
        _, key, rule = max(s for s in strong if s[1] != "overdue")
        return key, rule
    if "unpaid-weak" in last:  # a balance still due outweighs a thank-you for a payment
        return "unpaid", last["unpaid-weak"][1]
    if "paid-weak" in last:
        return "paid", last["paid-weak"][1]
    return None


# --------------------------------------------------------------------------------------------
# Vendor
# --------------------------------------------------------------------------------------------

_ORG_SUFFIX_RE = re.compile(
    r"\b(?:Inc|Corp|Corporation|Co|Company|Ltd|Limited|LLC|LLP|GmbH|AG|B\.V|BV|S\.A|SA|PLC|Pty|"
    r"Cooperative)\b\.?",
)
_NAME = (
    r"[A-Z][\w&'’.-]*(?:[ \t]+(?:&[ \t]+)?[A-Z][\w&'’.-]*){0,5}"
    r"(?:,?[ \t]+(?:Inc|Corp|Co|Ltd|LLC|LLP|B\.V|GmbH)\.?)?"
)
_VENDOR_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("payable-to", re.compile(rf"\b(?:make payment to|payable to|remit to)[ \t]+(?P<n>{_NAME})")),
    ("contact-ar", re.compile(rf"\bContact[ \t]+(?P<n>{_NAME})[ \t]+accounts receivable")),
    ("thanks-for", re.compile(rf"\bThank(?:s| you) for (?:choosing|shopping at|your order from|"
                              rf"your business with)[ \t]+(?P<n>{_NAME})")),
    ("from-vendor", re.compile(rf"\b(?:invoice|bill|statement|order|receipt)\b[^\n]{{0,30}}?\b"
                               rf"(?:from|at)[ \t]+(?P<n>{_NAME})")),
    ("your-vendor", re.compile(rf"\bYour[ \t]+(?P<n>{_NAME})[ \t]+(?:invoice|bill|statement|"
                               rf"order|policy)", re.UNICODE)),
    ("provider", re.compile(rf"\b(?:Provider|Vendor|Supplier|Merchant|Seller|Store)[ \t]*:"
                            rf"[ \t]*(?P<n>{_NAME})")),
)
_NOT_VENDOR = re.compile(
    r"^(?:invoice|sales invoice|statement|receipt|bill|account|your|the|dear|hello|hi|thanks|"
    r"order|total|amount|date|due|page|description|bill to|service for|payment|tax|subtotal|"
    r"accounts receivable|customer|summary|professional|monthly|annual)\b",
    re.IGNORECASE,
)


def _clean_vendor(name: str) -> str:
    name = re.sub(r"\s+", " ", name).strip(" \t-—·,.:;")
    name = re.sub(r"\s+(?:Billing|Accounts Receivable|Customer Care|Support|Team)$", "", name)
    return name.strip()


def _letterhead(text: str, user_names: set[str]) -> str | None:
    """The issuer line near the top: a name followed by an address/contact line (the ``·``-separated
    line invoices print under their logo), or a line carrying a company suffix."""
    lines = [ln.strip().lstrip("#").strip() for ln in text[:1500].split("\n")]
    lines = [ln for ln in lines if ln]
    for i, ln in enumerate(lines[:8]):
        if " · " in ln or re.search(r"\d{2,5} [A-Z][a-z]+ (?:St|Ave|Blvd|Rd|Way|Dr)\b", ln):
            cand = ln.split(" · ")[0].strip()
            if re.search(r"\d", cand) or "@" in cand:
                cand = lines[i - 1] if i > 0 else ""
            cand = _clean_vendor(cand)
            if cand and not _NOT_VENDOR.match(cand) and cand.lower() not in user_names:
                return cand
    for ln in lines[:6]:
        if _ORG_SUFFIX_RE.search(ln) and len(ln) < 80 and not _NOT_VENDOR.match(ln):
            return _clean_vendor(ln)
    # Receipts print the shop's name alone on the first line, often in capitals.
    first = lines[0] if lines else ""
    if first and len(first) <= 40 and not re.search(r"\d", first) and not _NOT_VENDOR.match(first):
        return _clean_vendor(first.title() if first.isupper() else first)
    return None


def _vendor(text: str, head: str, doc_type: str, meta: dict[str, str], kind: str) -> (
    tuple[str, str] | None
):
    """(vendor name as written, rule). For e-mail the sender organisation counts."""
    user_names = {n.lower() for n in _recipient_names(meta)}
    author = meta.get("author", "").strip()
    if doc_type == "email":
        sender_name = meta.get("from_name", "")
        domain = _domain_org(meta.get("from_addr", ""))
        # Prefer a name written in the mail that matches the sender's domain.
        for rule, pat in _VENDOR_PHRASES:
            for m in pat.finditer(head):
                cand = _clean_vendor(m.group("n"))
                slug = vendor_slug(cand)
                if slug and domain and (domain.startswith(slug[:4]) or slug.startswith(domain)):
                    return cand, f"email-{rule}"
        subj = meta.get("subject", "")
        for cand in _capitalised_names(subj + "\n" + _signature(head)):
            slug = vendor_slug(cand)
            if slug and domain and (domain.startswith(slug[:4]) or slug.startswith(domain[:4])):
                return cand, "email-name-matches-domain"
        if sender_name and not _looks_like_person(sender_name):
            return _clean_vendor(sender_name), "email-from-name"
        if domain:
            return domain, "email-domain"
        return None
    for rule, pat in _VENDOR_PHRASES[:3]:
        found = pat.search(text)
        if found:
            cand = _clean_vendor(found.group("n"))
            if cand and not _NOT_VENDOR.match(cand):
                return cand, rule
    if author and not _looks_like_person(author) and author.lower() not in user_names:
        return _clean_vendor(author), "doc-author"
    lh = _letterhead(text, user_names)
    if lh:
        return lh, "letterhead"
    for rule, pat in _VENDOR_PHRASES[3:]:
        found = pat.search(text)
        if found:
            cand = _clean_vendor(found.group("n"))
            if cand and not _NOT_VENDOR.match(cand):
                return cand, rule
    return None


def _recipient_names(meta: dict[str, str]) -> list[str]:
    from email.utils import getaddresses

    return [n for n, _ in getaddresses([meta.get("to", "")]) if n]


def _looks_like_person(name: str) -> bool:
    """Two or three capitalised words without any business word: "Dana Whitfield"."""
    words = name.replace(",", " ").split()
    if not 2 <= len(words) <= 3:
        return False
    low = [w.lower().strip(".") for w in words]
    if any(w in _LEGAL_SUFFIXES or w in _GENERIC_WORDS for w in low):
        return False
    return all(w[:1].isupper() for w in words)


def _capitalised_names(text: str) -> Iterator[str]:
    for m in re.finditer(r"(?:[A-Z][\w&'’-]+)(?:[ \t]+(?:&[ \t]+)?[A-Z][\w&'’-]+){0,4}", text):
        yield m.group()


def _signature(body: str) -> str:
    """The last few lines of the mail body (attachments excluded)."""
    lines = [ln for ln in body.strip().split("\n") if ln.strip()]
    return "\n".join(lines[-3:])


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

_MD_EMPHASIS = re.compile(r"\*\*|__")  # "**Invoice #:** X" reads as "Invoice #: X"

_FIELDS = ("kind", "doc_date", "issue_date", "due_date", "sent_date", "period_start", "period_end",
           "amount", "currency", "vendor", "vendor_name", "vendor_aliases", "status",
           "invoice_number", "sender", "sender_org")


def extract_fields(
    text: str, *, path: str, title: str, doc_type: str, meta: dict[str, str], mtime: float
) -> dict[str, object]:
    """Payload fields for filters; every key present (None when unknown) plus ``field_sources``
    naming the rule behind each value."""
    out: dict[str, object] = dict.fromkeys(_FIELDS)
    src: dict[str, str] = {}
    # The document's own part: for an e-mail, the body before any attachment.
    text = _MD_EMPHASIS.sub("", text)
    head = text.split("\n--- Attachment: ", 1)[0] if doc_type == "email" else text[:6000]
    kind, rule = _classify(text, head, doc_type, meta, path)
    out["kind"], src["kind"] = kind, rule
    financial = kind in FINANCIAL_KINDS

    if doc_type == "email":
        sent = _email_date(meta)
        if sent:
            out["sent_date"], src["sent_date"] = sent.isoformat(), "email-date-header"
        if meta.get("from_addr"):
            out["sender"], src["sender"] = meta["from_addr"], "email-from"
            org = _domain_org(meta["from_addr"])
            if org:
                out["sender_org"], src["sender_org"] = org, "email-domain"

    if financial or kind in {"invoice_register", "estimate"}:
        _money_fields(text, head, doc_type, meta, kind, out, src)

    # doc_date: issue date for bills, sent date for mail, a dated line for notes, else mtime.
    if out["issue_date"]:
        out["doc_date"], src["doc_date"] = out["issue_date"], src["issue_date"]
    elif out["sent_date"]:
        out["doc_date"], src["doc_date"] = out["sent_date"], src["sent_date"]
    else:
        d = _content_date(head, doc_type, path)
        if d is not None:
            out["doc_date"], src["doc_date"] = d[0].isoformat(), d[1]
        else:
            out["doc_date"] = dt.datetime.fromtimestamp(mtime).date().isoformat()
            src["doc_date"] = "mtime"
    out["field_sources"] = src
    return out


def _money_fields(text: str, head: str, doc_type: str, meta: dict[str, str], kind: str,
                  out: dict[str, object], src: dict[str, str]) -> None:
    # For an e-mail the body speaks for the message; an attached invoice fills what it leaves out.
    scopes = [head, text] if doc_type == "email" else [text]
    m = None
    for scope in scopes:
        m = _INVNO_RE.search(scope)
        if m:
            out["invoice_number"], src["invoice_number"] = m.group("no"), "label:invoice-number"
            break
    for scope in scopes:
        if kind == "receipt":
            issue = _labelled_date(scope, _ISSUE_LABELS) or _first_dated(scope)
        else:
            issue = _labelled_date(scope, _ISSUE_LABELS)
        if issue:
            out["issue_date"], src["issue_date"] = issue[0].isoformat(), "label:issue-date"
            break
    if kind in {"invoice", "payment_reminder", "estimate"}:
        for scope in scopes:
            due = _labelled_date(scope, _DUE_LABELS)
            if due:
                out["due_date"], src["due_date"] = due[0].isoformat(), "label:due-date"
                break
        for scope in scopes:
            pm = _PERIOD_RE.search(scope)
            if pm:
                period = _period(pm.group("v"))
                if period:
                    out["period_start"], out["period_end"] = (d.isoformat() for d in period)
                    src["period_start"] = src["period_end"] = "label:period"
                    break
    if doc_type == "email" and kind != "invoice":
        # A reminder or confirmation is *about* an invoice; its own date is when it was sent.
        out["issue_date"] = None
        src.pop("issue_date", None)
    for scope in scopes:
        am = _amount(scope)
        if am:
            out["amount"], src["amount"] = round(am[0].value, 2), am[1]
            out["currency"], src["currency"] = am[0].currency, "amount-symbol"
            break
    if kind == "receipt":
        out["status"], src["status"] = "paid", "receipt"
    elif kind == "payment_confirmation":
        out["status"], src["status"] = "paid", "payment-confirmation"
    elif kind != "invoice_register":
        for scope in scopes:
            st = _status(scope)
            if st:
                out["status"], src["status"] = st[0], f"phrase:{st[1]}"
                break
    vend = _vendor(text, head, doc_type, meta, kind)
    if vend:
        out["vendor_name"], src["vendor_name"] = vend[0], vend[1]
        slug = vendor_slug(vend[0])
        if slug:
            out["vendor"], src["vendor"] = slug, vend[1]
            out["vendor_aliases"] = vendor_aliases(vend[0])


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
