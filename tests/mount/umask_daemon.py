"""The daemon, serving under umask 0o077 instead of the umask(0) it sets for serving.

``python -m tests.mount.umask_daemon mount ...`` (pass it as ``mounted(program=...)``) runs
``memexfs.cli`` with every ``os.umask(0)`` turned into ``os.umask(SERVE_UMASK)``: what the daemon
does once it no longer relies on umask 0 to give new files the caller's mode. Modes seen through
such a mount must still be the caller's (the kernel already applied the caller's umask).
"""

from __future__ import annotations

import os
import sys

SERVE_UMASK = 0o077
_real_umask = os.umask


def _umask(mask: int) -> int:
    return _real_umask(SERVE_UMASK if mask == 0 else mask)


def main() -> int:
    os.umask = _umask
    from memexfs.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
