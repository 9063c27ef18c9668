"""Odd names and stuck searches through a real mount (issue 14).

File names with tabs and newlines keep ``.results`` one row per result (escaped columns); a query
name that is not UTF-8 is EINVAL, not EIO; a search stuck in a worker thread answers EIO within
its deadline while plain files and other queries keep working.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Iterator

import pytest

from mount.virtual import unescape_field
from tests.e2e import hung_search_daemon
from tests.mounting import Mount, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(600)]

ODD = "bread\tand\nbutter.md"
SOURDOUGH = "# Sourdough bread\nFeed the starter, mix flour and water, bake at 250C in a pot.\n"


@pytest.fixture(scope="module")
def odd_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    base = tmp_path_factory.mktemp("odd")
    vault = base / "vault"
    (vault / "notes").mkdir(parents=True)
    (vault / "notes" / ODD).write_text(SOURDOUGH)
    (vault / "notes" / "bikes.md").write_text(
        "# Bicycle repair\nFix a flat tyre: remove the wheel, patch the inner tube, reinflate.\n")
    program = [sys.executable, hung_search_daemon.__file__]
    with mounted(vault, base / "mnt", "--no-watch", program=program) as m:
        m.wait_idle(timeout=300)
        yield m
        assert m.proc.poll() is None, m.log_text()


def _errno(fn: object) -> str | None:
    try:
        fn()  # type: ignore[operator]
    except OSError as e:
        return errno.errorcode[e.errno or 0]
    return None


def test_results_rows_stay_one_line_with_tabs_and_newlines_in_names(odd_mount: Mount) -> None:
    folder = odd_mount.mnt / "q" / "sourdough bread starter"
    entries = [n for n in os.listdir(folder) if n != ".results"]
    assert ODD in entries  # the entry keeps the real name; the kernel can look it up
    assert os.path.realpath(folder / ODD) == str(odd_mount.mnt / "notes" / ODD)
    assert (folder / ODD).read_text() == SOURDOUGH
    rows = [line.split("\t") for line in (folder / ".results").read_text().splitlines()
            if not line.startswith("#")]
    assert rows
    assert all(len(r) == 4 for r in rows), rows
    assert unescape_field(rows[0][2]) == f"notes/{ODD}"


def test_non_utf8_query_name_is_einval(odd_mount: Mount) -> None:
    bad = os.fsencode(odd_mount.mnt / "q") + b"/bread \xff\xfe"
    assert _errno(lambda: os.stat(bad)) == "EINVAL"
    assert odd_mount.proc.poll() is None


def test_stuck_search_answers_eio_within_its_deadline(odd_mount: Mount) -> None:
    start = time.monotonic()
    assert _errno(lambda: os.listdir(odd_mount.mnt / "q" / "hangforever bread")) == "EIO"
    took = time.monotonic() - start
    assert took < hung_search_daemon.DEADLINE_S + 5, took
    # the mount keeps serving files and other queries while that thread is still stuck
    assert (odd_mount.mnt / "notes" / "bikes.md").read_text().startswith("# Bicycle")
    assert "bikes.md" in os.listdir(odd_mount.mnt / "q" / "fix a flat tyre")
    assert "no answer within" in odd_mount.log_text()


def test_query_file_says_how_the_name_was_read(odd_mount: Mount) -> None:
    folder = odd_mount.mnt / "q" / "sourdough bread -bikes after:2020"
    assert ".query" not in os.listdir(folder)  # hidden from listings, there for the asking
    about = dict(line.split(": ", 1) for line in (folder / ".query").read_text().splitlines())
    assert about["words"] == "sourdough bread"
    assert about["excluded words"] == "bikes"
    assert about["document date"].startswith("2021-01-01 to")
    assert "after:/before:" in about["document date"]


def test_the_mount_table_names_the_vault(odd_mount: Mount) -> None:
    """Like sshfs's user@host:dir: mount(8) and df(1) tell two MemexFS mounts apart."""
    mnt = str(odd_mount.mnt.resolve())
    with open("/proc/self/mountinfo") as f:
        rows = [line.split(" - ", 1)[1].split() for line in f if f" {mnt} " in line]
    assert rows
    assert rows[0][0] == "fuse.memexfs"
    assert rows[0][1] == str(odd_mount.vault.resolve())
