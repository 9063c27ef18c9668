"""``memexfs`` whose encoder takes 20 s to load, so a test can signal the daemon while it loads.

Run as ``python tests/mount/slow_encoder_daemon.py mount ...``. Only ``embed.load_encoder`` is
wrapped (the daemon imports it lazily, so the wrapper is what it gets); nothing else changes.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import embed
from memexfs import cli

LOAD_S = 20.0
_load = embed.load_encoder


def slow_load_encoder(name: str | None = None) -> Any:
    time.sleep(LOAD_S)  # a blocking load in a worker thread, like a cold disk
    return _load(name)


embed.load_encoder = slow_load_encoder  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
