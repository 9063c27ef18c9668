"""Why a file is not (fully) indexed, on the file itself (issue 12): ``user.memex.error``."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.mounting import mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]


def test_a_failed_file_says_why_in_an_xattr(tmp_path: Path) -> None:
    with mounted(tmp_path / "vault", tmp_path / "mnt", "--no-watch") as m:
        bad, good = m.mnt / "broken.pdf", m.mnt / "fine.txt"
        bad.write_bytes(b"%PDF-1.7\n" + b"\x00garbage, no xref, no objects\n" * 50)
        good.write_text("a perfectly ordinary note\n")
        m.wait_idle(timeout=240)
        status = os.getxattr(bad, "user.memex.status")
        assert status in (b"failed", b"metadata-only")
        reason = os.getxattr(bad, "user.memex.error").decode()
        assert reason
        assert "\n" not in reason
        assert "user.memex.error" in os.listxattr(bad)
        assert os.getxattr(good, "user.memex.status") == b"indexed"
        with pytest.raises(OSError, match="No data available") as err:
            os.getxattr(good, "user.memex.error")
        assert err.value.errno == errno.ENODATA
        assert "user.memex.error" not in os.listxattr(good)
        with pytest.raises(PermissionError):
            os.setxattr(good, "user.memex.error", b"forged")
