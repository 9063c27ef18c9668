"""The vault: a plain directory whose files MemexFS serves, and its hidden state folder."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memexfs import config
from memexfs.errors import MemexError, NotFound, VaultLocked
from memexfs.ignore import IgnoreRules

STATE_DIR = ".memexfs"
OWNER = "vault.json"  # in a state folder outside its vault: which vault it belongs to
HASH_BLOCK = 1 << 20
SAMPLE_BLOCK = 64 * 1024
SAMPLES = 8  # first and last block included
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def content_hash(path: str | os.PathLike[str]) -> str:
    """blake2b-256 of the file's bytes: the key that decides whether to re-embed.

    The last component is not followed: a symlink is never hashed in place of a file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return fd_hash(fd)
    finally:
        os.close(fd)


def fd_hash(fd: int, limit: int | None = None) -> str:
    """blake2b-256 of an open file's bytes (at most ``limit`` of them), read with ``pread`` so the
    file offset, which a descriptor passed to another process shares, is left alone."""
    h = hashlib.blake2b(digest_size=32)
    offset = 0
    while limit is None or offset < limit:
        want = HASH_BLOCK if limit is None else min(HASH_BLOCK, limit - offset)
        block = os.pread(fd, want, offset)
        if not block:
            break
        h.update(block)
        offset += len(block)
    return h.hexdigest()


def sampled_hash(fd: int, st: os.stat_result) -> str:
    """A cheap identity for files too big (or too binary) to read in full: size, mtime and a few
    blocks spread over the file. Hashing a 30 GB file to learn it must not be extracted would stall
    every other file behind it; a separate blake2b personalisation keeps it apart from full hashes.
    """
    h = hashlib.blake2b(digest_size=32, person=b"memexfs:sampled")
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    size = st.st_size
    last = max(size - SAMPLE_BLOCK, 0)
    for offset in sorted({last * i // (SAMPLES - 1) for i in range(SAMPLES)}):
        h.update(os.pread(fd, SAMPLE_BLOCK, offset))
    return h.hexdigest()


def _open_noatime(name: str, dirfd: int) -> int:
    """Indexing reads every file: O_NOATIME keeps that from touching the files' access times
    (``ls -lu``, mail readers, tmpreaper rely on them). Only the owner or a privileged process
    may ask for it; anyone else reads the normal way."""
    try:
        return os.open(name, _FILE_FLAGS | os.O_NOATIME, dir_fd=dirfd)
    except PermissionError:
        return os.open(name, _FILE_FLAGS, dir_fd=dirfd)


def open_regular(root: str | os.PathLike[str], rel: str) -> tuple[int, os.stat_result] | None:
    """Open ``root/rel`` for reading without following any symlink on the way, and fstat it.

    Returns (descriptor, stat of that descriptor), or None when ``rel`` is no regular file reached
    through real folders (missing, a symlink, a FIFO or device, ``..``). Each folder is opened
    relative to the previous one with O_NOFOLLOW, so a folder swapped for a link mid-way fails
    instead of leading out of the vault; O_NONBLOCK keeps a FIFO swapped in from blocking the open.
    Other errors (EACCES, EMFILE, EIO) are raised: they say nothing about the path.
    """
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    gone = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO)
    dirfd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
            except OSError as exc:
                if exc.errno in gone:
                    return None
                raise
            os.close(dirfd)
            dirfd = nxt
        name = parts[-1]
        try:
            # lstat first: a FIFO or device found in place is not even opened
            if not stat.S_ISREG(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                return None
            fd = _open_noatime(name, dirfd)
        except OSError as exc:
            if exc.errno in gone:
                return None
            raise
    finally:
        os.close(dirfd)
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):  # swapped after the lstat
        os.close(fd)
        return None
    return fd, st


def escape_path(path: str | os.PathLike[str]) -> str:
    """An absolute path as one file name, the way ``systemd-escape --path`` writes it
    (``/home/me/Documents`` -> ``home-me-Documents``): readable, and no two paths collide."""
    text = os.path.normpath(os.fspath(path)).strip("/")
    if not text:
        return "-"
    out = []
    for i, ch in enumerate(text):
        if ch == "/":
            out.append("-")
        elif (ch.isascii() and (ch.isalnum() or ch in ":_.")) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def state_path(root: Path, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the vault at ``root`` (its real path) keeps its index, catalog, lock and logs —
    the one place that decides it: ``state_dir`` (``--state-dir``), else the config's
    ``state_root``/<escaped root>, else ``<vault>/.memexfs``."""
    cfg = config.current()
    explicit = state_dir if state_dir is not None else cfg.state_dir
    if explicit is not None:
        return Path(explicit).expanduser().absolute()
    if cfg.state_root is not None:
        return cfg.state_root / escape_path(root)
    return root / STATE_DIR


def state_owner(state: Path) -> str | None:
    """The vault an outside state folder belongs to (None: none recorded)."""
    try:
        root = json.loads((state / OWNER).read_text()).get("root")
    except (OSError, ValueError, AttributeError):
        return None
    return root if isinstance(root, str) else None


@dataclass(frozen=True)
class Vault:
    root: Path
    state: Path = Path()  # absolute; the default (empty) is filled in by state_path()
    excludes: tuple[str, ...] = ()  # the config's gitignore patterns, before .memexignore's

    def __post_init__(self) -> None:
        if not self.state.is_absolute():
            object.__setattr__(self, "state", state_path(self.root))

    @classmethod
    def open(cls, path: str | os.PathLike[str],
             state_dir: str | os.PathLike[str] | None = None) -> Vault:
        """The vault at ``path``, its state folder created (owner-only) where
        :func:`state_path` says. A state folder outside the vault remembers its vault, so it
        is never shared by two; inside, only ``.memexfs`` (anything else would be indexed)."""
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise NotFound(f"vault {path} is not a directory")
        state = state_path(root, state_dir)
        inside = state.resolve().is_relative_to(root)
        if inside and state.resolve() != root / STATE_DIR:
            raise MemexError(f"state folder {state} is inside the vault {root}: put it "
                             "elsewhere (it would be indexed)")
        owner = None if inside else state_owner(state)
        if owner is not None and owner != str(root):
            raise MemexError(f"state folder {state} belongs to the vault {owner}, not {root}")
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(state)
        vault = cls(root, state, config.current().excludes)
        if not inside and owner is None:
            vault.write_json(OWNER, {"root": str(root)})
        return vault

    @property
    def index_dir(self) -> Path:
        return self.state / "index"

    def abspath(self, rel: str) -> Path:
        return self.root / rel

    def relpath(self, path: str | os.PathLike[str]) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def iter_files(self) -> Iterator[tuple[str, os.stat_result]]:
        """Every regular file to index (not following symlinks): the state folder and what
        ``.memexignore`` (with its defaults: ``.git/``, ``node_modules/``...) names excluded."""
        rules = self.ignore_rules()
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
                        rel = Path(e.path).relative_to(self.root).as_posix()
                        if e.is_dir(follow_symlinks=False):
                            if not rules.ignored(rel, is_dir=True):
                                stack.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False) and not rules.ignored(rel):
                            yield rel, e.stat(follow_symlinks=False)
                    except OSError:
                        continue

    def ignore_rules(self) -> IgnoreRules:
        """What indexing skips (memexfs.ignore), with this vault's configured excludes."""
        return IgnoreRules.for_vault(self.root, self.excludes)

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


def _make_private(state: Path) -> None:
    """``.memexfs`` holds the documents' text (the index): 0700, and no group/other bits on
    anything in it, also in vaults that older versions left world-readable."""
    for dirpath, dirnames, filenames in os.walk(state):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            try:
                st = os.lstat(name)
                if st.st_mode & 0o077 and not stat.S_ISLNK(st.st_mode):
                    # never through a link swapped in since the lstat (Linux refuses that)
                    os.chmod(name, stat.S_IMODE(st.st_mode) & 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):  # not ours to change, or gone meanwhile
                continue


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
        self.fd = fd
        self.claim()

    def claim(self) -> None:
        """Name this process as the holder: the daemon takes the lock, then forks, and the
        lock must name the process that keeps it (not the CLI that exits)."""
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)

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
