"""The one name check of the mount, and the one name it hides.

Every name the kernel hands a handler is checked here (the kernel already refuses longer paths,
not longer components); a name under ``/q`` (or ``connect/``) is also a query, so it must be
text the query parser can read. The control-character rule is the parser's (``query.parse``:
Unicode category Cc), so a name is refused before a search for the same reason a search would.
"""

from __future__ import annotations

import os
import unicodedata

from memexfs.errors import BadQuery, NameTooLong

NAME_MAX = 255  # bytes in one path component, as on every Linux file system
STATE_DIR = ".memexfs"  # the daemon's state at the vault root: no request reaches it


def check_name(name: bytes | str) -> None:
    """Any name: at most ``NAME_MAX`` bytes (str names are measured as the bytes they were)."""
    raw = os.fsencode(name) if isinstance(name, str) else name
    if len(raw) > NAME_MAX:
        raise NameTooLong(f"name longer than {NAME_MAX} bytes")


def check_query(name: str) -> None:
    """A name that is a query: a name, UTF-8 text, without control characters."""
    check_name(name)
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise BadQuery("control characters are not allowed in a query")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode left surrogate escapes: the bytes were not UTF-8
        raise BadQuery("a query must be UTF-8 text") from None
