"""The store's own child processes: ``python -m memexfs.store serve FD`` (a store process,
``memexfs.store.process``) and ``python -m memexfs.store build DIR ...`` (an HNSW builder,
``memexfs.store.optimize``). One entry module, never imported by the package, so running it
does not load a second copy of a module the package already holds."""

from __future__ import annotations

import sys

from memexfs.store import optimize, process

COMMANDS = {"serve": process.main, "build": optimize.main}

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
    sys.exit(f"usage: python -m memexfs.store {{{','.join(COMMANDS)}}} ARGS")
