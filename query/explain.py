"""How a ``/q`` name was read: the text behind a query folder's hidden ``.query`` file.

A user who sees an unexpected listing can ``cat q/<name>/.query`` and find which words were
searched, which phrases became filters (and whether a date window filters or only ranks), and
what the engine said about the result.
"""

from __future__ import annotations

from datetime import date

from query.parse import Query, date_window


def _window(lo: date | None, hi: date | None) -> str:
    return f"{lo.isoformat() if lo else '…'} to {hi.isoformat() if hi else '…'}"


def describe(q: Query, reason: str | None = None) -> str:
    """One ``key: value`` line per part of the query that was understood (stable, greppable)."""
    lines = [f"query: {q.raw}", f"words: {q.text or '(none: filters only)'}"]
    if q.negations:
        lines.append(f"excluded words: {', '.join(q.negations)}")
    if q.types:
        lines.append(f"type: {', '.join(q.types)}")
    if q.folders:
        lines.append(f"in: {', '.join(q.folders)}")
    lo, hi = date_window(q)
    if lo is not None or hi is not None:
        how = ("after:/before: (filter)" if q.explicit_dates
               else "time phrase in a sentence (ranks, does not filter)" if q.date_hint_only
               else "time phrase (filter)")
        lines.append(f"document date: {_window(lo, hi)} — {how}")
        if q.date_soft is not None and q.date_from is not None and q.date_to is not None:
            lines.append(f"document date, every reading agrees: {_window(q.date_from, q.date_to)}"
                         " (ranked first)")
    if q.due_from is not None or q.due_to is not None:
        lines.append(f"due date: {_window(q.due_from, q.due_to)}")
    if q.status:
        lines.append(f"payment status: {q.status} (files known to contradict it are left out)")
    if q.kinds:
        lines.append(f"document kind: {', '.join(q.kinds)} (ranks first)")
    if q.vendors:
        lines.append(f"vendor: {', '.join(q.vendors)}")
    if q.amount_min is not None or q.amount_max is not None:
        lo_a = "…" if q.amount_min is None else f"{q.amount_min:g}"
        hi_a = "…" if q.amount_max is None else f"{q.amount_max:g}"
        lines.append(f"amount: {lo_a} to {hi_a}")
    if q.currency:
        lines.append(f"currency: {q.currency}")
    lines.append(f"results wanted (k): {q.k}")
    if q.min_score is not None:
        lines.append(f"cosine floor (min): {q.min_score:g}")
    if q.today is not None:
        lines.append(f"today: {q.today.isoformat()}")
    if reason:
        lines.append(f"note: {' '.join(reason.split())}")
    return "\n".join(lines) + "\n"
