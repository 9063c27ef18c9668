"""Shared fixtures. Layers: unit (pure) -> ops (mount/ops/'s handlers, no kernel) -> component
(real Qdrant Edge, extractor, encoder) -> mount (real FUSE, daemon in a subprocess) -> e2e (real
encoder through a real mount).

Every test fails on a WARNING or ERROR record from our loggers that it did not declare with
``@pytest.mark.expected_log("substring")`` (or look at through ``caplog``); the daemon's log of
every mount a test made is held to the same rule for ERROR records (``tests.mounting``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest

from tests import mounting
from tests.mounting import EVAL_DIR, Mount, fuse_available, mounted

PERSONAL = EVAL_DIR / "personal-dev"
TODAY = "2024-01-15"
OUR_LOGGERS = ("memexfs", "mount", "query", "embed")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expected_log(*substrings): WARNING/ERROR log records (in this process or in "
        "the daemon log of a mount the test made) containing one of these are expected")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if fuse_available():
        return
    skip = pytest.mark.skip(reason="needs /dev/fuse and root for a real FUSE mount")
    for item in items:
        if "mount" in item.keywords:
            item.add_marker(skip)


class _Tripwire(logging.Handler):
    """Keeps the WARNING-or-worse records of our loggers, from any thread of this process."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in OUR_LOGGERS:
            self.records.append(record)


def expected_logs(item: pytest.Item) -> tuple[str, ...]:
    return tuple(s for m in item.iter_markers("expected_log") for s in m.args)


@pytest.fixture(autouse=True)
def _no_unexpected_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """A warning nobody asserted on is a bug report nobody reads: fail the test on it."""
    expected = expected_logs(request.node)
    mounting.EXPECTED_DAEMON_LOG[:] = expected  # for the mounts this test tears down
    tripwire = _Tripwire()
    root = logging.getLogger()
    root.addHandler(tripwire)
    try:
        yield
    finally:
        root.removeHandler(tripwire)
    if "caplog" in request.fixturenames:
        return  # the test inspects the records itself
    unexpected = [r for r in tripwire.records
                  if not any(s in r.getMessage() for s in expected)]
    if unexpected:
        lines = "\n".join(f"  {r.levelname} {r.name}: {r.getMessage()}" for r in unexpected)
        pytest.fail("unexpected log records (declare them with "
                    f"@pytest.mark.expected_log(...) if they are the point):\n{lines}",
                    pytrace=False)


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
