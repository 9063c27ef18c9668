"""``--log-file`` and ``--log-level`` (issue 12): the daemon logs where and how much it is told,
and a log file it creates is private to its owner like the rest of its state."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.mounting import mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]


def test_log_file_and_level(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "memexfs.log"
    log.parent.mkdir()
    with mounted(tmp_path / "vault", tmp_path / "mnt", "--no-watch", "--log-file", str(log),
                 "--log-level", "info") as m:
        (m.mnt / "a.txt").write_text("a note about lentils\n")
        m.wait_idle(timeout=240)
    text = log.read_text()
    assert "mounted" in text  # an INFO line
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    quiet = tmp_path / "quiet.log"
    with mounted(tmp_path / "vault", tmp_path / "mnt", "--no-watch", "--log-file", str(quiet),
                 "--log-level", "error") as m:
        m.wait_idle(timeout=240)
    assert "mounted" not in quiet.read_text()  # INFO is below the level asked for
