"""``memexfs check``: do vault, catalog and chunks agree? (S3QL runs its fsck after every test.)"""

from __future__ import annotations

import os

from memexfs import schema
from memexfs.store import Store
from memexfs.vault import Vault


def check(vault: Vault, store: Store) -> list[str]:
    """Every broken invariant of ``memexfs.schema`` as one line; empty when all agree."""
    problems: list[str] = []
    files = {rec.file_id: rec for rec in store.iter_files()}
    paths: dict[str, str] = {}
    for rec in files.values():
        if rec.path in paths:
            problems.append(f"duplicate catalog path {rec.path}")
        paths[rec.path] = rec.file_id
        if not os.path.isfile(vault.abspath(rec.path)):
            problems.append(f"catalog entry without a file: {rec.path}")
        if rec.status not in schema.STATES:
            problems.append(f"unknown status {rec.status!r}: {rec.path}")
    per_file: dict[str, int] = {}
    for hit in store.iter_chunks():
        fid = str(hit.payload.get("file_id"))
        per_file[fid] = per_file.get(fid, 0) + 1
        owner = files.get(fid)
        if owner is None:
            problems.append(f"orphan chunk {hit.point_id} of unknown file {fid}")
            continue
        if hit.payload.get("path") != owner.path:
            problems.append(f"chunk path {hit.payload.get('path')} != catalog {owner.path}")
        if owner.status != schema.PENDING and hit.payload.get("content_hash") != owner.content_hash:
            problems.append(f"stale chunk (content hash) in {owner.path}")
        if owner.status != schema.PENDING and hit.payload.get("encoder") != owner.encoder:
            problems.append(f"chunk of {owner.path} made by encoder {hit.payload.get('encoder')}, "
                            f"catalog says {owner.encoder}")
    for fid, rec in files.items():
        if rec.status in (schema.INDEXED, schema.METADATA_ONLY, schema.FAILED) and \
                per_file.get(fid, 0) != rec.chunks:
            problems.append(f"{rec.path}: catalog says {rec.chunks} chunks, "
                            f"index has {per_file.get(fid, 0)}")
    for path, _st in vault.iter_files():
        if path not in paths:
            problems.append(f"file not in the catalog: {path}")
    return problems
