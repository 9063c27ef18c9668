"""Fixtures for the real-mount tests: one mount per test module, compared with a plain directory.

The reference directory sits on the same filesystem as the vault, so whatever the passthrough
inherits from the backing filesystem (xattr support, name limits) is the same on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mount.trees import Trees, assert_consistent, settle
from tests.mounting import mounted


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    """A vault mounted with ``--no-watch`` (all changes go through the mount, so the watcher
    would only echo them) and a sibling plain directory as the POSIX reference; ``memexfs check``
    runs on the vault once the module is done."""
    base = tmp_path_factory.mktemp("posix")
    ref = base / "ref"
    ref.mkdir()
    with mounted(base / "vault", base / "mnt", "--no-watch") as m:
        yield Trees(m, ref)
        assert m.proc.poll() is None, f"daemon died:\n{m.log_text()}"
        settle(m)
    assert_consistent(base / "vault")  # every test's leftovers, after the module
