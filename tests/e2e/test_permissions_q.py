"""Query folders show each caller only what that caller could read (issue 4, permissions).

A small vault mounted with ``--allow-other``; a child process switched to another uid (and a
supplementary group) lists the same query folders as root. The other user must never learn the
*names* of files it cannot read — not from the listing, not from ``.results``, and not from a
kernel cache that root's lookups just filled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mounting import Mount, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

# The other user's interpreter: the test venv lives under /root, which nobody may enter; the
# child only needs the standard library.
CHILD_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                     if os.access(p, os.X_OK)), sys.executable)
OTHER_UID = 65534  # nobody
OTHER_GID = 65534
SHARED_GID = 4242  # a group the other user is a supplementary member of
QUERY = "lentil soup recipe"

_CHILD = r"""
import errno, json, os, stat, sys
folder = sys.argv[1]
out = {}
try:
    out["names"] = [n for n in os.listdir(folder) if n != ".results"]
    with open(os.path.join(folder, ".results")) as f:
        out["results"] = f.read()
except OSError as e:
    out["error"] = errno.errorcode[e.errno]
probes = {}
for name in sys.argv[2:]:
    try:
        st = os.lstat(os.path.join(folder, name))
        probes[name] = "link" if stat.S_ISLNK(st.st_mode) else "dir"
    except OSError as e:
        probes[name] = errno.errorcode[e.errno]
out["probes"] = probes
print(json.dumps(out))
"""


def as_other(folder: Path, *probe: str) -> dict[str, Any]:
    proc = subprocess.run(
        [CHILD_PYTHON, "-c", _CHILD, str(folder), *probe], capture_output=True, text=True,
        timeout=60, user=OTHER_UID, group=OTHER_GID, extra_groups=[SHARED_GID], cwd="/")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def shared_mount() -> Iterator[Mount]:
    # pytest's tmp dirs are 0700: the other user could not even reach the mountpoint.
    base = Path(tempfile.mkdtemp(prefix="memexfs-perm-"))
    base.chmod(0o755)
    vault = base / "vault"
    soup = "Red lentil soup recipe: onion, carrot, cumin, lemon, simmer 30 minutes. "
    files = {
        "public/lentil-soup.md": (soup + "Serves four.", 0o644, 0),
        "public/secret-lentil-soup.md": (soup + "Grandma's secret: smoked paprika.", 0o600, 0),
        "public/group-lentil-soup.md": (soup + "The club's version with coconut.", 0o640,
                                        SHARED_GID),
        "locked/lentil-soup-copy.md": (soup + "A copy in a locked folder.", 0o644, 0),
    }
    for rel, (text, mode, gid) in files.items():
        p = vault / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
        os.chown(p, 0, gid)
    vault.chmod(0o755)
    (vault / "public").chmod(0o755)
    (vault / "locked").chmod(0o700)
    try:
        with mounted(vault, base / "mnt", "--allow-other", "--no-watch") as m:
            m.wait_idle(timeout=240)
            yield m
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_sees_every_match(shared_mount: Mount) -> None:
    folder = shared_mount.mnt / "q" / QUERY
    listed = set(os.listdir(folder)) - {".results"}
    assert listed == {"lentil-soup.md", "secret-lentil-soup.md", "group-lentil-soup.md",
                      "lentil-soup-copy.md"}


def test_other_user_sees_only_readable_files(shared_mount: Mount) -> None:
    folder = shared_mount.mnt / "q" / QUERY
    os.listdir(folder)  # root fills the kernel's caches first: they must not leak
    for name in ("secret-lentil-soup.md", ".results"):
        os.lstat(folder / name)
    got = as_other(folder, "secret-lentil-soup.md", "lentil-soup-copy.md", "lentil-soup.md")
    assert "error" not in got, got
    assert sorted(got["names"]) == ["group-lentil-soup.md", "lentil-soup.md"]
    assert "secret" not in got["results"]
    assert "locked/" not in got["results"]
    rows = [ln for ln in got["results"].splitlines() if not ln.startswith("# ")]
    assert got["results"].startswith("# rank")
    assert len(rows) == 2  # the two visible rows
    # (a row's extracted fields follow it as a "# <rank>\t..." line, issue 12)
    # Any other name in a query folder is a refinement (a folder): a hidden file's name looks
    # exactly like a name that matches nothing — it is never a result link.
    assert got["probes"] == {"secret-lentil-soup.md": "dir", "lentil-soup-copy.md": "dir",
                             "lentil-soup.md": "link"}


def test_other_user_cannot_use_related_to_probe(shared_mount: Mount) -> None:
    folder = shared_mount.mnt / "related" / "public" / "lentil-soup.md"
    assert "secret-lentil-soup.md" in os.listdir(folder)
    got = as_other(folder, "secret-lentil-soup.md")
    assert "secret-lentil-soup.md" not in got.get("names", [])
    assert got["probes"]["secret-lentil-soup.md"] == "ENOENT"  # /related has no refinements
    # a file the other user cannot read has no related folder for them either
    hidden = as_other(shared_mount.mnt / "related" / "public" / "secret-lentil-soup.md")
    assert hidden.get("error") in ("ENOENT", "EACCES"), hidden


def test_saved_queries_are_root_only_to_create(shared_mount: Mount) -> None:
    """/q is 0555 and mounted with default_permissions: the kernel refuses other users' mkdir."""
    proc = subprocess.run(
        [CHILD_PYTHON, "-c", "import os,sys; os.mkdir(sys.argv[1])",
         str(shared_mount.mnt / "q" / "soup")], capture_output=True, text=True, timeout=60,
        user=OTHER_UID, group=OTHER_GID, cwd="/")
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr
    assert os.listdir(shared_mount.mnt / "q") == []


def test_related_folder_root_just_opened_stays_closed_to_others(shared_mount: Mount) -> None:
    """Root's lookup leaves the kernel a shared dentry for related/<file> (1 s): another user
    reaching ``.results`` through it must still be refused."""
    folder = shared_mount.mnt / "related" / "public" / "secret-lentil-soup.md"
    assert "lentil-soup.md" in os.listdir(folder)
    got = as_other(folder, ".results", "lentil-soup.md")
    assert got.get("error") in ("ENOENT", "EACCES"), got
    assert got["probes"] == {".results": "EACCES", "lentil-soup.md": "EACCES"}, got


def test_saved_query_names_are_private_to_their_owner(shared_mount: Mount) -> None:
    q = shared_mount.mnt / "q"
    os.mkdir(q / "soup for grandma")
    try:
        assert os.listdir(q) == ["soup for grandma"]
        got = as_other(q)
        assert got["names"] == [], got
    finally:
        os.rmdir(q / "soup for grandma")
    assert os.listdir(q) == []
