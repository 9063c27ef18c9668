"""``Type=notify`` units (scripts/systemd/memexfs@.service): the daemon tells systemd READY=1 once
the mount is live and STOPPING=1 when it unmounts, on ``$NOTIFY_SOCKET`` (issue 12)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.mounting import is_mounted, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]


def _messages(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return out
        out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


def test_the_daemon_notifies_ready_then_stopping(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(where))
        monkeypatch.setenv("NOTIFY_SOCKET", str(where))
        with mounted(tmp_path / "vault", tmp_path / "mnt", "--no-watch") as m:
            sock.settimeout(60)
            ready = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
            assert ready["READY"] == "1"
            assert int(ready["MAINPID"]) == m.proc.pid  # --foreground: the service's main pid
            assert is_mounted(str(m.mnt.resolve()))  # ready means the mount is live
            assert str(m.vault.resolve()) in ready["STATUS"]
        sock.settimeout(30)
        stopping = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        assert stopping == {"STOPPING": "1"}
        sock.setblocking(False)
        assert _messages(sock) == []
    assert not os.path.exists(tmp_path / "mnt" / ".memexfs")
