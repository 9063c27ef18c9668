"""Which backend a vault uses: the one place that chooses between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memexfs.store.api import Store
from memexfs.store.edge import EdgeStore
from memexfs.store.process import ProcessStore
from memexfs.store.server import ServerStore, collection_prefix


def open_store(vault: Any, qdrant_url: str | None = None, dim: int = 384, *,
               in_process: bool = False, repair: bool = False,
               log_to: str | Path | None = None) -> Store:
    """The vault's store: Qdrant Edge in ``.memexfs/index`` or, once a vault was given a
    ``qdrant_url`` (remembered in ``.memexfs/config.json``), collections on that server.

    Edge runs in a store process of its own (``ProcessStore``) unless ``in_process``: its native
    code can hold the GIL, panic or die by SIGBUS, and none of that may stop or kill the caller.
    ``repair`` moves an index that cannot be opened aside and starts an empty one; ``log_to``
    takes the store process's stderr (default: ours).
    """
    config = vault.read_json("config.json")
    url = qdrant_url or config.get("qdrant_url")
    if not url:
        if in_process:
            return EdgeStore(vault.index_dir, dim, repair=repair)
        return ProcessStore(vault.index_dir, dim, repair=repair, log_to=log_to)
    store = ServerStore(dim, url=str(url), prefix=collection_prefix(str(vault.root)))
    if qdrant_url and config.get("qdrant_url") != qdrant_url:  # remembered once it worked
        vault.write_json("config.json", {**config, "qdrant_url": qdrant_url})
    return store
