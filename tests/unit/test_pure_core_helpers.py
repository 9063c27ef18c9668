"""The pure helpers under the mount: per-caller access answers (memexfs.access), the reconcile
plan (memexfs.reconcile) and the inode table's descriptor shedding (mount.inodes). No encoder,
no mount: real files in tmp_path, a catalog double that only lists records."""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from memexfs import config, schema
from memexfs.access import can_reach, can_read
from memexfs.reconcile import plan
from memexfs.schema import FileRecord
from memexfs.vault import STATE_DIR, Vault
from mount import inodes
from mount.inodes import ROOT, InodeTable, fd_high_water
from tests.fakes import file_id

OWNER, GROUP = 12345, 23456  # the files' owner and group: never the test process's
STRANGER = 34567  # a uid in no class but "other"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


# ----------------------------------------------------------------------------- access

def _node(path: Path, mode: int, owner: int = OWNER, group: int = GROUP) -> Path:
    os.chown(path, owner, group)
    path.chmod(mode)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> str:
    """root/ 755 · open/f 644 · locked/ 766 (no x) with f 644 · xonly/ 711 with f 644 ·
    modes/* files whose one class has read (all owned by OWNER:GROUP)."""
    root = tmp_path / "v"
    root.mkdir()
    _node(root, 0o755)
    for d, mode in (("open", 0o755), ("locked", 0o766), ("xonly", 0o711), ("modes", 0o755)):
        (root / d).mkdir()
        (root / d / "f").write_text("x")
        _node(root / d / "f", 0o644)
        _node(root / d, mode)
    for name, mode in (("owner", 0o400), ("group", 0o040), ("other", 0o004), ("none", 0o000),
                       ("not-owner", 0o044), ("not-group", 0o404)):
        (root / "modes" / name).write_text("x")
        _node(root / "modes" / name, mode)
    return str(root)


@needs_root
@pytest.mark.parametrize(("name", "uid", "gids", "readable"), [
    ("owner", OWNER, frozenset(), True),
    ("owner", STRANGER, frozenset({GROUP}), False),
    ("group", STRANGER, frozenset({GROUP}), True),
    ("group", STRANGER, frozenset({1, 2, GROUP}), True),  # a supplementary group counts
    ("group", STRANGER, frozenset({1, 2}), False),
    ("other", STRANGER, frozenset({1}), True),
    ("none", STRANGER, frozenset({GROUP}), False),
    # the first matching class decides, even when a later one would allow
    ("not-owner", OWNER, frozenset({GROUP}), False),
    ("not-owner", STRANGER, frozenset(), True),
    ("not-group", STRANGER, frozenset({GROUP}), False),
    ("not-group", STRANGER, frozenset(), True),
])
def test_read_bits_by_class(tree: str, name: str, uid: int, gids: frozenset[int],
                            readable: bool) -> None:
    assert can_read(tree, f"modes/{name}", uid, gids) is readable


@needs_root
def test_root_reads_everything(tree: str) -> None:
    assert can_read(tree, "modes/none", 0, frozenset())
    assert can_reach(tree, "locked/f", 0, frozenset())
    assert can_read(tree, "locked/f", 0, frozenset())


@needs_root
def test_a_folder_without_search_hides_what_is_inside(tree: str) -> None:
    assert can_read(tree, "open/f", STRANGER, frozenset())
    assert not can_reach(tree, "locked/f", STRANGER, frozenset())
    assert not can_read(tree, "locked/f", STRANGER, frozenset())
    # its owner has rwx on it
    assert can_read(tree, "locked/f", OWNER, frozenset())
    # the folder itself is reached through root and has r for others: listing it is allowed
    assert can_read(tree, "locked", STRANGER, frozenset())


@needs_root
def test_search_without_read_on_a_folder(tree: str) -> None:
    assert can_read(tree, "xonly/f", STRANGER, frozenset())  # x is enough to pass through
    assert not can_read(tree, "xonly", STRANGER, frozenset())  # but not to read it


@needs_root
def test_the_vault_root_itself_is_checked(tree: str) -> None:
    _node(Path(tree), 0o750)
    assert not can_read(tree, "open/f", STRANGER, frozenset())
    assert can_read(tree, "open/f", STRANGER, frozenset({GROUP}))


@needs_root
def test_deep_paths_check_every_folder(tree: str) -> None:
    deep = Path(tree, "open", "a", "b")
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    _node(deep / "f", 0o644)
    _node(deep, 0o755)
    _node(deep.parent, 0o700)  # "a": only its owner may pass
    assert can_read(tree, "open/a/b/f", OWNER, frozenset())
    assert not can_read(tree, "open/a/b/f", STRANGER, frozenset({GROUP}))


@needs_root
def test_missing_paths_are_unreadable(tree: str) -> None:
    assert not can_read(tree, "open/nope", STRANGER, frozenset())
    assert not can_read(tree, "nope/f", STRANGER, frozenset())
    assert not can_reach(tree, "nope/f", STRANGER, frozenset())


@needs_root
def test_symlinks_are_judged_by_their_target(tree: str) -> None:
    root = Path(tree)
    (root / "open" / "secret").write_text("x")
    _node(root / "open" / "secret", 0o600)
    (root / "to-secret").symlink_to("open/secret")  # the link's own 777 does not count
    (root / "to-open").symlink_to("open/f")
    (root / "to-locked").symlink_to("locked")  # a folder link on the way
    (root / "dangling").symlink_to("open/nope")
    assert not can_read(tree, "to-secret", STRANGER, frozenset())
    assert can_read(tree, "to-secret", OWNER, frozenset())
    assert can_read(tree, "to-open", STRANGER, frozenset())
    assert not can_read(tree, "to-locked/f", STRANGER, frozenset())
    assert not can_read(tree, "dangling", STRANGER, frozenset())


@needs_root
def test_a_symlink_into_a_folder_the_caller_cannot_search(tree: str) -> None:
    (Path(tree) / "to-locked-file").symlink_to("locked/f")
    assert not can_read(tree, "to-locked-file", STRANGER, frozenset())


# --------------------------------------------------------------------------- reconcile

class CatalogOnly:
    """All ``reconcile.plan`` asks of a store: its file records."""

    def __init__(self, records: list[FileRecord]) -> None:
        self.records = records

    def iter_files(self) -> Iterator[FileRecord]:
        return iter(self.records)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with config.activate(config.Config()):  # no user config: the state folder is .memexfs
        yield Vault.open(tmp_path)


def _write(vault: Vault, rel: str, text: str = "hello") -> os.stat_result:
    path = vault.abspath(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.stat()


def _record(n: int, rel: str, st: os.stat_result, *, status: str = schema.INDEXED,
            ino: int | None = None) -> FileRecord:
    """The catalog entry an indexer would have written for ``rel`` as it is now."""
    return FileRecord(file_id=file_id(n), path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns,
                      ino=st.st_ino if ino is None else ino, status=status)


def _plan(vault: Vault, records: list[FileRecord]) -> tuple[list[str], list[tuple[str, str]],
                                                            list[tuple[str, str]], int]:
    p = plan(vault, CatalogOnly(records))  # type: ignore[arg-type]
    return sorted(p.changed), sorted(p.removed), sorted(p.moved), p.unchanged


def test_unchanged_files_are_only_counted(vault: Vault) -> None:
    recs = [_record(i, rel, _write(vault, rel)) for i, rel in enumerate(("a.md", "d/b.md"))]
    assert _plan(vault, recs) == ([], [], [], 2)


@pytest.mark.parametrize("attr", ["size", "mtime_ns"])
def test_size_or_mtime_change_requeues(vault: Vault, attr: str) -> None:
    rec = _record(0, "a.md", _write(vault, "a.md"))
    setattr(rec, attr, 1)  # what the catalog remembers no longer matches the file
    assert _plan(vault, [rec]) == (["a.md"], [], [], 0)


def test_a_pending_entry_is_requeued_though_nothing_changed(vault: Vault) -> None:
    rec = _record(0, "a.md", _write(vault, "a.md"), status=schema.PENDING)
    assert _plan(vault, [rec]) == (["a.md"], [], [], 0)


def test_new_files_are_changed(vault: Vault) -> None:
    _write(vault, "new.md")
    _write(vault, "d/e/deep.md")
    assert _plan(vault, []) == (["d/e/deep.md", "new.md"], [], [], 0)


def test_a_deleted_file_is_removed(vault: Vault) -> None:
    rec = _record(3, "gone.md", _write(vault, "gone.md"))
    vault.abspath("gone.md").unlink()
    assert _plan(vault, [rec]) == ([], [(file_id(3), "gone.md")], [], 0)


def test_an_outside_rename_moves_the_entry(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"))
    vault.abspath("sub").mkdir()
    vault.abspath("old.md").rename(vault.abspath("sub/new.md"))  # same inode, size and mtime
    assert _plan(vault, [rec]) == ([], [], [("old.md", "sub/new.md")], 0)


def test_a_rename_with_a_new_mtime_moves_and_requeues(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"))
    vault.abspath("old.md").rename(vault.abspath("new.md"))
    st = vault.abspath("new.md").stat()
    os.utime(vault.abspath("new.md"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _plan(vault, [rec]) == (["new.md"], [], [("old.md", "new.md")], 0)


def test_a_rename_with_a_new_size_is_a_remove_and_an_add(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"))
    vault.abspath("old.md").rename(vault.abspath("new.md"))
    vault.abspath("new.md").write_text("grown since")  # same inode, another size
    assert _plan(vault, [rec]) == (["new.md"], [(file_id(0), "old.md")], [], 0)


def test_same_size_but_another_inode_is_no_move(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"))
    _write(vault, "copy.md")  # same bytes: the decision is by inode, never by content
    vault.abspath("old.md").unlink()
    assert _plan(vault, [rec]) == (["copy.md"], [(file_id(0), "old.md")], [], 0)


def test_an_entry_without_an_inode_is_never_moved(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"), ino=0)
    vault.abspath("old.md").rename(vault.abspath("new.md"))
    assert _plan(vault, [rec]) == (["new.md"], [(file_id(0), "old.md")], [], 0)


def test_a_rename_onto_a_known_path_is_no_move(vault: Vault) -> None:
    a = _record(0, "a.md", _write(vault, "a.md", "aaa"))
    b = _record(1, "b.md", _write(vault, "b.md", "bbb"))
    vault.abspath("a.md").rename(vault.abspath("b.md"))  # b's entry now sees a's inode
    changed, removed, moved, unchanged = _plan(vault, [a, b])
    assert (removed, moved) == ([(file_id(0), "a.md")], [])
    assert unchanged + len(changed) == 1  # b is judged by size and mtime only


def test_ignored_files_are_never_planned(vault: Vault) -> None:
    (vault.root / ".memexignore").write_text("*.log\ndrafts/\n")
    _write(vault, "run.log")
    _write(vault, "drafts/d.md")
    _write(vault, "notes/n.md")
    was = _record(0, "old.log", _write(vault, "old.log"))  # indexed before the rule
    changed, removed, moved, _ = _plan(vault, [was])
    assert changed == [".memexignore", "notes/n.md"]
    assert (removed, moved) == ([(file_id(0), "old.log")], [])


def test_a_rename_into_an_ignored_folder_removes(vault: Vault) -> None:
    (vault.root / ".memexignore").write_text("drafts/\n")
    rec = _record(0, "a.md", _write(vault, "a.md"))
    vault.abspath("drafts").mkdir()
    vault.abspath("a.md").rename(vault.abspath("drafts/a.md"))
    assert _plan(vault, [rec])[1:3] == ([(file_id(0), "a.md")], [])


def test_the_state_folder_is_never_planned(vault: Vault) -> None:
    assert vault.state == vault.root / STATE_DIR
    (vault.state / "catalog.db").write_text("x")
    (vault.state / "index").mkdir(exist_ok=True)
    (vault.state / "index" / "seg").write_text("x")
    _write(vault, "sub/.memexfs/kept.md")  # only the root's state folder is special
    assert _plan(vault, []) == (["sub/.memexfs/kept.md"], [], [], 0)


def test_a_pending_entry_renamed_outside_is_requeued(vault: Vault) -> None:
    rec = _record(0, "old.md", _write(vault, "old.md"), status=schema.PENDING)
    vault.abspath("old.md").rename(vault.abspath("new.md"))
    assert _plan(vault, [rec]) == (["new.md"], [], [("old.md", "new.md")], 0)


# ------------------------------------------------------------------------------ inodes

@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    for i in range(16):
        (tmp_path / f"f{i}").write_text(str(i))
    return tmp_path


@pytest.fixture
def table(vault_dir: Path) -> Iterator[InodeTable]:
    t = InodeTable(os.open(vault_dir, os.O_PATH | os.O_DIRECTORY), high_water=8)
    root_fd = t.nodes[ROOT].fd
    try:
        yield t
    finally:
        t.close_all()
        os.close(root_fd)


def _adopt(table: InodeTable, vault_dir: Path, i: int, parent: int = ROOT) -> inodes.Node:
    path = vault_dir / f"f{i}"
    node = table.adopt(os.open(path, os.O_PATH), os.stat(path), parent, f"f{i}".encode())
    node.nlookup += 1  # what the operations do for each entry they hand the kernel
    return node


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        if exc.errno == errno.EBADF:
            return False
        raise
    return True


class Invalidations:
    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []

    def __call__(self, parent: int, name: bytes) -> None:
        self.calls.append((parent, name))


def test_high_water_is_half_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    for soft, want in ((1024, 512), (100, 64), (65536, 32768)):
        monkeypatch.setattr(resource, "getrlimit", lambda _r, s=soft: (s, 1 << 20))
        assert fd_high_water() == want
    monkeypatch.setattr(resource, "getrlimit",
                        lambda _r: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert fd_high_water() == 1 << 20


def test_the_table_defaults_to_fd_high_water(vault_dir: Path) -> None:
    t = InodeTable(os.open(vault_dir, os.O_PATH | os.O_DIRECTORY))
    try:
        assert t.high_water == fd_high_water()
    finally:
        os.close(t.nodes[ROOT].fd)


def test_nothing_is_shed_up_to_the_mark(table: InodeTable, vault_dir: Path) -> None:
    for i in range(8):
        _adopt(table, vault_dir, i)
    seen = Invalidations()
    assert table.shed(seen) == 0
    assert seen.calls == []
    assert table.open_fds == 8


def test_past_the_mark_the_least_recent_are_named(table: InodeTable, vault_dir: Path) -> None:
    nodes = [_adopt(table, vault_dir, i) for i in range(9)]
    _adopt(table, vault_dir, 0)  # looked up again: now the most recent
    seen = Invalidations()
    # 9 open, down to 3/4 of 8 = 6: three named, least recently used first
    assert table.shed(seen) == 3
    assert seen.calls == [(ROOT, b"f1"), (ROOT, b"f2"), (ROOT, b"f3")]
    # naming closes nothing: a running request may still use them, FORGET closes them
    assert all(_is_open(n.fd) for n in nodes)
    assert table.open_fds == 9


def test_forget_closes_what_was_named(table: InodeTable, vault_dir: Path) -> None:
    nodes = {i: _adopt(table, vault_dir, i) for i in range(9)}
    seen = Invalidations()
    table.shed(seen)
    named = {int(name[1:]) for _, name in seen.calls}
    for i in named:  # the kernel answers each invalidation with a FORGET
        table.forget(nodes[i].inode, nodes[i].nlookup)
    for i, node in nodes.items():
        assert _is_open(node.fd) is (i not in named)
        assert (node.inode in table.nodes) is (i not in named)
    assert table.open_fds == 9 - len(named)
    assert _is_open(table.nodes[ROOT].fd)


def test_a_node_still_looked_up_survives_a_partial_forget(table: InodeTable,
                                                         vault_dir: Path) -> None:
    node = _adopt(table, vault_dir, 0)
    _adopt(table, vault_dir, 0)  # two lookups of one object share one node and one fd
    assert node.nlookup == 2
    assert table.open_fds == 1
    table.forget(node.inode, 1)
    assert _is_open(node.fd)
    assert node.inode in table.nodes
    table.forget(node.inode, 1)
    assert not _is_open(node.fd)
    assert table.open_fds == 0


def test_forgetting_the_root_closes_nothing(table: InodeTable) -> None:
    table.forget(ROOT, 10)
    assert ROOT in table.nodes
    assert _is_open(table.nodes[ROOT].fd)


def test_pinned_and_unnamed_nodes_are_not_named(table: InodeTable, vault_dir: Path) -> None:
    pinned = _adopt(table, vault_dir, 0)
    pinned.extra["pinned"] = True
    _adopt(table, vault_dir, 1, parent=0)  # learned of without a parent: nothing to invalidate
    _adopt(table, vault_dir, 2, parent=999)  # its parent is forgotten already
    for i in range(3, 9):
        _adopt(table, vault_dir, i)
    seen = Invalidations()
    assert table.shed(seen) == 0  # the three least recent cannot be named
    assert seen.calls == []
    # they went to the back of the line: the next round names others
    for i in range(9, 12):
        _adopt(table, vault_dir, i)
    assert table.shed(seen) == 6
    assert {n for _, n in seen.calls} == {f"f{i}".encode() for i in range(3, 9)}


def test_shedding_waits_for_forgets_between_rounds(table: InodeTable, vault_dir: Path) -> None:
    nodes = [_adopt(table, vault_dir, i) for i in range(9)]
    seen = Invalidations()
    assert table.shed(seen) == 3
    _adopt(table, vault_dir, 9)  # 10 open: the FORGETs have not come yet
    assert table.shed(seen) == 0  # hysteresis: not named again under the next mark (9 + 2)
    for n in nodes[:3]:
        table.forget(n.inode, n.nlookup)
    assert table.open_fds == 7  # back under the mark: the next excess sheds at once
    for i in range(10, 12):
        _adopt(table, vault_dir, i)
    assert table.shed(seen) == 3
