"""The one name check: what a path component may be, and what a query name must also be.

The mount checks every name the kernel hands a handler; a name under ``/q`` (or ``connect/``)
is also a query, which the parser checks again when it is searched from the CLI or the API, with
the same rule, so a name is refused through the mount for the same reason a search would be.
"""

from __future__ import annotations

import os
import unicodedata

from memexfs.errors import BadQuery, NameTooLong

NAME_MAX = 255  # bytes in one path component, as on every Linux file system


def check_name(name: bytes | str) -> None:
    """Any name: at most ``NAME_MAX`` bytes (str names are measured as the bytes they were)."""
    raw = os.fsencode(name) if isinstance(name, str) else name
    if len(raw) > NAME_MAX:
        raise NameTooLong(f"name longer than {NAME_MAX} bytes")


def check_query(name: str) -> None:
    """A name that is a query: a name, UTF-8 text, without control characters (Unicode Cc)."""
    check_name(name)
    for ch in name:
        if unicodedata.category(ch) == "Cc":
            raise BadQuery(f"control character {ch!r} in a query")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode left surrogate escapes: the bytes were not UTF-8
        raise BadQuery("a query must be UTF-8 text") from None
