"""The vault: a plain directory whose files MemexFS serves, and its hidden state folder."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memexfs.errors import NotFound, VaultLocked

STATE_DIR = ".memexfs"
HASH_BLOCK = 1 << 20


def content_hash(path: str | os.PathLike[str]) -> str:
    """blake2b-256 of the file's bytes: the key that decides whether to re-embed."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Vault:
    root: Path

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Vault:
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise NotFound(f"vault {path} is not a directory")
        (root / STATE_DIR).mkdir(exist_ok=True)
        return cls(root)

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def index_dir(self) -> Path:
        return self.state / "index"

    def abspath(self, rel: str) -> Path:
        return self.root / rel

    def relpath(self, path: str | os.PathLike[str]) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def iter_files(self) -> Iterator[tuple[str, os.stat_result]]:
        """Every regular file in the vault (not following symlinks), state folder excluded."""
        stack = [self.root]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    if d == self.root and e.name == STATE_DIR:
                        continue
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            yield Path(e.path).relative_to(self.root).as_posix(), e.stat(
                                follow_symlinks=False)
                    except OSError:
                        continue

    # ---- config and runtime info
    def read_json(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.state / name).read_text()))
        except (OSError, ValueError):
            return {}

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.state / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.state / name)


class VaultLock:
    """One daemon (or one offline indexer) per vault: an flock on ``.memexfs/lock``."""

    def __init__(self, vault: Vault) -> None:
        self.path = vault.state / "lock"
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            raise VaultLocked(
                f"vault is in use by another memexfs process{f' (pid {holder})' if holder else ''}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> VaultLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
