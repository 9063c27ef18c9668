"""Shared fixtures. Layers: unit (pure) -> component (real Qdrant Edge, extractor, encoder) ->
mount (real FUSE, daemon in a subprocess) -> e2e (real encoder through a real mount)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.mounting import EVAL_DIR, Mount, fuse_available, mounted

PERSONAL = EVAL_DIR / "personal-dev"
TODAY = "2024-01-15"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if fuse_available():
        return
    skip = pytest.mark.skip(reason="needs /dev/fuse and root for a real FUSE mount")
    for item in items:
        if "mount" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def personal_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """The personal-dev corpus copied into a vault, mounted with --today 2024-01-15 and the real
    default encoder, fully indexed. Shared by the e2e tests (indexing it costs a minute or two);
    tests that change files must put them back or work in their own folder."""
    if not (PERSONAL / "corpus").is_dir():
        pytest.fail(f"evaluation corpus missing at {PERSONAL} (set MEMEXFS_EVAL_DIR)")
    base = tmp_path_factory.mktemp("personal")
    vault = base / "vault"
    shutil.copytree(PERSONAL / "corpus", vault, symlinks=True)
    with mounted(vault, base / "mnt", "--today", TODAY) as m:
        m.wait_idle(timeout=1200)
        yield m
