"""Which backend a vault uses: the one place that chooses between them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from memexfs.store.api import Store
from memexfs.store.edge import EdgeStore
from memexfs.store.process import ProcessStore
from memexfs.store.server import ServerStore, Sharding, collection_prefix


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
    prefix, sharding, remember = _placement(vault, config)
    store = ServerStore(dim, url=str(url), prefix=prefix, sharding=sharding)
    if qdrant_url and config.get("qdrant_url") != qdrant_url:  # remembered once it worked
        remember["qdrant_url"] = qdrant_url
    if remember:
        vault.write_json("config.json", {**config, **remember})
    return store


def _placement(vault: Any, config: dict[str, Any]) -> tuple[str, Sharding | None,
                                                             dict[str, Any]]:
    """The collections' prefix, the vault's ``Sharding`` and what to remember in its config.

    Alone on a server, a vault's collections are named after its path. On a cluster
    (``"qdrant_cluster": {"collections": NAME, "shards": N, "replication_factor": R,
    "write_consistency_factor": W}`` in ``config.json``, ``docs/scale.md``) it is a shard key,
    its ``vault_id`` (made once and remembered: the path may change, the key must not), in the
    ``NAME_catalog``/``NAME_chunks`` pair shared by every vault."""
    cluster = config.get("qdrant_cluster")
    if not cluster:
        return collection_prefix(str(vault.root)), None, {}
    vault_id = str(config.get("vault_id") or uuid.uuid4().hex)
    defaults = Sharding(vault_id)
    sharding = Sharding(
        vault_id, shards=int(cluster.get("shards", defaults.shards)),
        replication_factor=int(cluster.get("replication_factor", defaults.replication_factor)),
        write_consistency_factor=int(cluster.get("write_consistency_factor",
                                                 defaults.write_consistency_factor)))
    remember = {} if config.get("vault_id") else {"vault_id": vault_id}
    return str(cluster.get("collections", "memexfs")), sharding, remember
