"""The extracted fields a file is filtered by, kept in memory for the mount's xattrs.

``DocFields`` is the shown part of ``memexfs.fields`` (kind, vendor, amount, currency, due date,
stated date, payment status) in the form the filters see it: the chunk payload's flat keys,
dates as day numbers, a date guessed from mtime left out. The same value comes from a search
hit's payload (``.results``, ``--json``) and from the catalog (``FieldsMemory``), so a file shows
one answer everywhere.

``FieldsMemory`` answers ``getxattr user.memex.vendor`` and friends without a store call (the
store can stall for its whole deadline, and FUSE handlers run on the trio thread). It has to hold
every file of a large vault: values are tuples of interned strings and small ints, and the
common case, a file with a kind and nothing else, shares one tuple per kind.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

EPOCH = dt.date(1970, 1, 1)

# Field key -> what it is called in xattrs (``user.memex.<name>``), .results and JSON.
SHOWN = ("kind", "vendor", "amount", "currency", "due", "date", "payment")


def day_number(iso: object) -> int | None:
    """ISO date -> days since 1970-01-01 (what range filters compare)."""
    if not isinstance(iso, str) or len(iso) < 10:
        return None
    try:
        return (dt.date.fromisoformat(iso[:10]) - EPOCH).days
    except ValueError:
        return None


def _iso(day: int | None) -> str | None:
    return None if day is None else (EPOCH + dt.timedelta(days=day)).isoformat()


def _word(value: object) -> str | None:
    """A short vocabulary string (kind, vendor slug, currency, status), interned: a vault has
    a few dozen distinct ones and a million files naming them."""
    return sys.intern(value) if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DocFields(NamedTuple):
    """A file's extracted fields as the filters see them (None: not found in the document)."""

    kind: str | None = None
    vendor: str | None = None  # the slug the ``vendor`` filter matches
    amount: float | None = None
    currency: str | None = None
    due_day: int | None = None  # days since 1970-01-01
    date_day: int | None = None  # the date the document states (not one guessed from mtime)
    payment: str | None = None  # paid | unpaid | overdue, as the document states it

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DocFields | None:
        """From a chunk payload (flat keys: ``vendor``, ``due_day``, ``doc_day``, ``status``);
        None when it holds no field at all."""
        amount = payload.get("amount")
        out = cls(_word(payload.get("kind")), _word(payload.get("vendor")),
                  float(amount) if isinstance(amount, int | float) and
                  not isinstance(amount, bool) else None,
                  _word(payload.get("currency")), _int(payload.get("due_day")),
                  _int(payload.get("doc_day")), _word(payload.get("status")))
        return out if any(v is not None for v in out) else None

    @classmethod
    def from_text(cls, values: Mapping[str, str]) -> DocFields | None:
        """The inverse of :meth:`shown` (a ``.results`` field line read back)."""
        try:
            amount = float(values["amount"]) if "amount" in values else None
        except ValueError:
            amount = None
        return cls.from_payload({"kind": values.get("kind"), "vendor": values.get("vendor"),
                                 "amount": amount, "currency": values.get("currency"),
                                 "due_day": day_number(values.get("due")),
                                 "doc_day": day_number(values.get("date")),
                                 "status": values.get("payment")})

    @property
    def due(self) -> dt.date | None:
        return None if self.due_day is None else EPOCH + dt.timedelta(days=self.due_day)

    @property
    def date(self) -> dt.date | None:
        return None if self.date_day is None else EPOCH + dt.timedelta(days=self.date_day)

    def to_json(self) -> dict[str, Any]:
        """Every shown name, None where unknown; dates as ISO strings."""
        return {"kind": self.kind, "vendor": self.vendor, "amount": self.amount,
                "currency": self.currency, "due": _iso(self.due_day),
                "date": _iso(self.date_day), "payment": self.payment}

    def shown(self) -> dict[str, str]:
        """name -> text of the fields that are known (xattr values, ``.results`` columns)."""
        out = {}
        for name, value in self.to_json().items():
            if value is not None:
                out[name] = f"{value:.2f}" if name == "amount" else str(value)
        return out


class FieldsMemory:
    """path -> :class:`DocFields` of every indexed file (see the module docstring).

    Written by the indexer (a worker thread while it loads the catalog at mount, the trio thread
    after each commit, move and removal); read by FUSE handlers. Each call is one dict
    operation, atomic under the GIL, so readers need no lock.
    """

    def __init__(self) -> None:
        self._by_path: dict[str, DocFields] = {}
        self._kind_only: dict[str | None, DocFields] = {}

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: str) -> DocFields | None:
        return self._by_path.get(path)

    def put(self, path: str, fields: DocFields | None) -> None:
        """Remember ``fields`` for ``path`` (None forgets it)."""
        if fields is None:
            self._by_path.pop(path, None)
            return
        if fields[1:] == _NOTHING:  # most files: one shared tuple per kind
            fields = self._kind_only.setdefault(fields.kind, fields)
        self._by_path[path] = fields

    def drop(self, path: str) -> None:
        self._by_path.pop(path, None)

    def move(self, old: str, new: str) -> None:
        fields = self._by_path.pop(old, None)
        if fields is not None:
            self._by_path[new] = fields
        else:
            self._by_path.pop(new, None)


_NOTHING = DocFields()[1:]
