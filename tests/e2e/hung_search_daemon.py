"""``memexfs`` whose searches for a query containing ``hangforever`` block in their worker thread,
as a store or encoder call stuck in native code would, so a test can check that the deadline of
``/q`` really fires. The deadline is cut to ``DEADLINE_S`` to keep the test short; nothing else
changes.

Run as ``python tests/e2e/hung_search_daemon.py mount ...``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from memexfs import cli
from mount.virtual import base
from query.searcher import Searcher

DEADLINE_S = 3.0
RELEASE_AFTER_S = 120.0  # the stuck thread lets go eventually, so the daemon can always exit
_search = Searcher.search


def hanging_search(self: Searcher, segments: Any, k: int | None = None) -> Any:
    if any("hangforever" in s for s in segments):
        threading.Event().wait(RELEASE_AFTER_S)  # blocks without giving trio a way in
    return _search(self, segments, k)


Searcher.search = hanging_search  # type: ignore[method-assign]
base.SEARCH_DEADLINE_S = DEADLINE_S

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
