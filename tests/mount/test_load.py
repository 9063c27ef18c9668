"""Mixed load through a real mount (issue 14): writers, a renamer, readers, query-folder listers
and changes made around the mount, all at once, for ``MEMEXFS_LOAD_S`` seconds (30 by default;
the issue's campaign ran minutes). No operation may fail, none may stall (bound below), the
daemon's memory must stay flat once warm, and the index must agree with the vault afterwards."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mounting import Mount, memexfs_cmd, mounted

pytestmark = [pytest.mark.mount, pytest.mark.slow, pytest.mark.timeout(900)]

LOAD_S = float(os.environ.get("MEMEXFS_LOAD_S", "30"))
# Any single operation slower than this is a stall. The issue asks for one second; these
# shared 2-core machines also run the encoder and the indexer meanwhile, so the bound here is
# looser and the note reports the measured maximum.
STALL_S = 5.0
TOPICS = ("invoice payment due", "sourdough bread recipe", "bicycle tyre repair",
          "french revolution history")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _daemon_pid(m: Mount) -> int:
    import json

    return int(json.loads((m.vault / ".memexfs" / "mount.json").read_text())["pid"])


class Load:
    def __init__(self, until: float) -> None:
        self.until = until
        self.errors: list[str] = []
        self.slowest = 0.0
        self.ops = 0
        self._lock = threading.Lock()

    def run(self, name: str, step: Callable[[int], None]) -> threading.Thread:
        def loop() -> None:
            i = 0
            while time.monotonic() < self.until:
                t0 = time.monotonic()
                try:
                    step(i)
                except Exception as exc:  # every failure is a finding
                    with self._lock:
                        self.errors.append(f"{name} #{i}: {type(exc).__name__}: {exc}")
                took = time.monotonic() - t0
                with self._lock:
                    self.slowest = max(self.slowest, took)
                    self.ops += 1
                i += 1

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        return t


def test_mixed_load_has_no_errors_no_stalls_and_flat_memory(tmp_path: Path) -> None:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    (vault / "seed").mkdir(parents=True)
    for i, topic in enumerate(TOPICS):
        (vault / "seed" / f"{i}.md").write_text(f"# {topic}\n\nNotes about {topic}.\n")
    with mounted(vault, mnt) as m:
        m.wait_idle(timeout=240)
        for topic in TOPICS:  # warm: encoder loaded, first searches done
            os.listdir(m.mnt / "q" / topic)
        pid = _daemon_pid(m)
        rss_warm = _rss_kib(pid)
        rng = random.Random(7)
        load = Load(time.monotonic() + LOAD_S)
        for w in range(2):
            (m.mnt / f"w{w}").mkdir()

        def writer(w: int) -> Callable[[int], None]:
            def step(i: int) -> None:
                path = m.mnt / f"w{w}" / f"note-{i % 50}.md"
                with open(path, "w") as f:
                    f.write(f"# {TOPICS[i % len(TOPICS)]}\n\nentry {i} by writer {w}\n")
                    f.flush()
                    os.fsync(f.fileno())
            return step

        (m.mnt / "spin").mkdir()
        (m.mnt / "spin" / "a.md").write_text("# bicycle tyre repair\n\nspinning file\n")

        def renamer(i: int) -> None:
            src, dst = ("a.md", "b.md") if i % 2 == 0 else ("b.md", "a.md")
            os.rename(m.mnt / "spin" / src, m.mnt / "spin" / dst)

        def reader(i: int) -> None:
            (m.mnt / "seed" / f"{rng.randrange(len(TOPICS))}.md").read_bytes()
            os.stat(m.mnt / "seed")

        def lister(i: int) -> None:
            os.listdir(m.mnt / "q" / TOPICS[i % len(TOPICS)])

        (vault / "outside").mkdir()

        def outside(i: int) -> None:  # around the mount: the watcher and invalidations
            (vault / "outside" / f"o{i % 20}.md").write_text(f"# invoice payment due\n\n{i}\n")
            time.sleep(0.05)

        threads = [load.run("writer0", writer(0)), load.run("writer1", writer(1)),
                   load.run("renamer", renamer), load.run("reader", reader),
                   load.run("lister", lister), load.run("outside", outside)]
        for t in threads:
            t.join(timeout=LOAD_S + 120)
        assert not any(t.is_alive() for t in threads), "a worker is stuck"
        assert load.errors == [], load.errors[:10]
        assert load.slowest < STALL_S, f"slowest operation {load.slowest:.2f}s"
        assert load.ops > 100
        m.wait_idle(timeout=300)
        assert m.proc.poll() is None, m.log_text()
        rss_end = _rss_kib(pid)
        # flat: the working set may settle, not grow with the number of operations
        assert rss_end < rss_warm * 1.5 + 50_000, (rss_warm, rss_end)
        print(f"load: {load.ops} ops in {LOAD_S:.0f}s, slowest {load.slowest:.3f}s, "
              f"daemon RSS {rss_warm} -> {rss_end} KiB")
    check = subprocess.run(memexfs_cmd("check", str(vault)), capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
