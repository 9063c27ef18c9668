"""State outside the vault (issue 12) through a real mount: ``--state-dir DIR`` and the config's
``state_root`` keep index, catalog, lock and logs away from the documents, and the vault folder
receives nothing but what the user writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from memexfs.vault import escape_path
from tests.mounting import memexfs_cmd, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memexfs_cmd(*args), capture_output=True, text=True, timeout=240,
                          env=env)


def seed(vault: Path) -> None:
    (vault / "notes").mkdir(parents=True)
    (vault / "notes" / "soup.md").write_text("a recipe for lentil soup with cumin")
    (vault / "bill.txt").write_text("electricity bill from Volta Power, due in May")


def test_state_dir_keeps_the_vault_untouched(tmp_path: Path) -> None:
    vault, state = tmp_path / "vault", tmp_path / "state"
    seed(vault)
    before = os.stat(vault).st_mtime_ns
    with mounted(vault, tmp_path / "mnt", "--no-watch", "-o", f"state_dir={state}") as m:
        (m.mnt / "notes" / "stew.md").write_text("a lentil stew, like soup but thicker")
        assert m.wait_idle(timeout=240)["files"] == 3
        found = {p.name for p in (m.mnt / "q" / "lentil soup").iterdir()}
        assert {"soup.md", "stew.md"} <= found
        assert (m.mnt / ".memexfs").exists()  # the daemon's control file is still there
    assert tree(vault) == {"notes", "notes/soup.md", "notes/stew.md", "bill.txt"}
    assert os.stat(vault).st_mtime_ns == before  # nothing created in it, not even for a while
    assert (state / "index").is_dir()
    assert os.stat(state).st_mode & 0o077 == 0
    # later commands find the index through the same flag, from a path inside the vault
    res = cli("search", "--state-dir", str(state), str(vault / "notes"), "electricity bill",
              "--relative", "--paths")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "bill.txt"
    assert tree(vault) == {"notes", "notes/soup.md", "notes/stew.md", "bill.txt"}
    # without it, the vault is not indexed, and says so without creating anything
    res = cli("search", str(vault), "electricity bill")
    assert res.returncode == 1
    assert "not indexed" in res.stderr
    assert not (vault / ".memexfs").exists()


def test_state_root_from_the_config_needs_no_flags(tmp_path: Path) -> None:
    vault, root = tmp_path / "vault", tmp_path / "states"
    seed(vault)
    conf = tmp_path / "config.toml"
    conf.write_text(f'state_root = "{root}"\n[mount]\nno_watch = true\n')
    env = {**os.environ, "MEMEXFS_CONFIG": str(conf)}
    state = root / escape_path(vault.resolve())
    assert cli("index", str(vault), env=env).returncode == 0
    assert tree(vault) == {"notes", "notes/soup.md", "bill.txt"}
    assert (state / "index").is_dir()
    mount = memexfs_cmd("--config", str(conf))
    with mounted(vault, tmp_path / "mnt", program=mount) as m:
        assert m.stats()["watcher"] == "off"  # the config's no_watch
        (m.mnt / "bill2.txt").write_text("the second electricity bill from Volta Power")
        m.wait_idle(timeout=240)
        assert (state / "mount.json").exists()
        res = cli("status", str(vault), "--json", env=env)  # the vault path leads to the mount
        assert res.returncode == 0, res.stderr
    assert tree(vault) == {"notes", "notes/soup.md", "bill.txt", "bill2.txt"}
    res = cli("search", str(vault), "electricity bill", "--relative", "--paths", env=env)
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()[:2]) == {"bill.txt", "bill2.txt"}
