"""Vendor names: who sent or issued a document, as a display name, a slug and aliases."""

from __future__ import annotations

import re
from collections.abc import Iterator

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
