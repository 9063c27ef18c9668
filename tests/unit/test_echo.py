"""OwnChanges: the watcher drops exactly the states our own operations left, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from memexfs.echo import ABSENT, OwnChanges, lstat_signature, signature


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_state_we_left_is_ours_an_outside_write_after_it_is_not(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("ours\n")
    own = OwnChanges()
    own.record("f.txt", signature(os.lstat(f)))
    assert own.is_own("f.txt", lstat_signature(f))
    assert own.is_own("f.txt", lstat_signature(f))  # a burst split over two batches
    f.write_text("them\n")  # same size: ctime and mtime still tell them apart
    assert not own.is_own("f.txt", lstat_signature(f))
    assert not own.is_own("other.txt", lstat_signature(tmp_path / "other.txt"))


def test_absent_is_a_state_too(tmp_path: Path) -> None:
    own = OwnChanges()
    assert lstat_signature(tmp_path / "gone") == ABSENT
    own.record("gone", ABSENT)
    assert own.is_own("gone", lstat_signature(tmp_path / "gone"))
    (tmp_path / "gone").write_text("recreated around the mount\n")
    assert not own.is_own("gone", lstat_signature(tmp_path / "gone"))


def test_unknown_state_is_never_ours() -> None:
    own = OwnChanges()
    own.record("x", ABSENT)
    assert not own.is_own("x", None)


def test_objects_we_write_are_ours_under_any_name_until_released(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    st = os.lstat(f)
    own = OwnChanges()
    own.start_writing((st.st_dev, st.st_ino))
    own.start_writing((st.st_dev, st.st_ino))  # two handles
    f.write_text("still being written through the mount")
    os.rename(f, tmp_path / "g.txt")
    assert own.is_own("g.txt", lstat_signature(tmp_path / "g.txt"))
    own.stop_writing((st.st_dev, st.st_ino))
    assert own.writing((st.st_dev, st.st_ino))
    own.stop_writing((st.st_dev, st.st_ino))
    assert not own.writing((st.st_dev, st.st_ino))
    assert not own.is_own("g.txt", lstat_signature(tmp_path / "g.txt"))


def test_entries_expire_after_a_match_after_the_ttl_and_past_the_cap() -> None:
    clock = Clock()
    own = OwnChanges(ttl=30.0, grace=2.0, max_entries=3, clock=clock)
    sig = (1, 2, 0o100644, 3, 4, 5)
    own.record("a", sig)
    assert own.is_own("a", sig)
    clock.now += 2.5
    assert not own.is_own("a", sig)  # matched once, then the grace ran out
    own.record("b", sig)
    clock.now += 31
    assert not own.is_own("b", sig)
    for name in ("c", "d", "e", "f"):
        own.record(name, sig)
    assert len(own) == 3
    assert not own.is_own("c", sig)
    assert own.is_own("f", sig)


def test_what_vanished_with_a_folder_we_moved_is_ours() -> None:
    own = OwnChanges()
    own.record("d/sub", ABSENT)  # renamed away (or removed) through the mount
    assert own.is_own("d/sub/deep/file.txt", ABSENT)
    assert not own.is_own("d/sub/file.txt", (1, 2, 0o100644, 0, 0, 3, 4, 5))
    assert not own.is_own("d/other/file.txt", ABSENT)


def test_nothing_is_kept_without_a_watcher() -> None:
    own = OwnChanges(max_entries=0)
    own.record("a", ABSENT)
    assert len(own) == 0


def test_a_change_through_one_name_of_a_file_refreshes_its_other_names(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text("x")
    own = OwnChanges()
    os.link(a, b)
    own.record("b", signature(os.lstat(b)))
    os.link(a, c)  # changes the shared ctime and link count, seen under b as well
    own.record("c", signature(os.lstat(c)))
    assert own.is_own("b", lstat_signature(b))
    os.unlink(a)
    own.record("a", ABSENT)
    own.refresh(signature(os.lstat(c)))  # what the operations do after unlinking one name
    assert own.is_own("a", lstat_signature(a))
    assert own.is_own("b", lstat_signature(b))
    assert own.is_own("c", lstat_signature(c))
