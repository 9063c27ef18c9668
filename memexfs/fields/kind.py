"""Document kind (invoice, receipt, contract, note...) from labels, phrases and folder hints."""

from __future__ import annotations

import re
from pathlib import PurePath

from memexfs.fields.money import _money

FINANCIAL_KINDS = frozenset(
    {"invoice", "receipt", "payment_confirmation", "payment_reminder"}
)


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
