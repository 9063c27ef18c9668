"""The mount's name rules: the one name check (:mod:`memexfs.names`, shared with the query
parser) and the one name it hides.
"""

from __future__ import annotations

from memexfs.names import NAME_MAX, check_name, check_query

__all__ = ["NAME_MAX", "STATE_DIR", "check_name", "check_query"]

STATE_DIR = ".memexfs"  # the daemon's state at the vault root: no request reaches it
