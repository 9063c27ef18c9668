"""The config file (issue 12): typed defaults, one-line errors (rc 2), command line > file >
built-in; where a vault's state lives (``--state-dir``, ``state_root``); ``excludes``; the
index progress bar's fixed total."""

from __future__ import annotations

import argparse
import io
from dataclasses import fields, replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from memexfs import api, cli, config
from memexfs.errors import MemexError
from memexfs.vault import STATE_DIR, Vault, escape_path, state_path

FULL = """\
encoder = "minilm"
excludes = ["*.iso", "Archive/"]
state_root = "~/states"

[mount]
allow_other = true
ro = false
no_watch = true
today = 2024-05-01
encoder = "ternary"
qdrant_url = "http://q:6333"
log_level = "warning"

[search]
k = 7
"""


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own ~/.config must not leak into these tests."""
    monkeypatch.delenv(config.ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_no_file_means_built_in_defaults() -> None:
    assert config.load() == config.Config()
    assert config.current() == config.Config()


def test_every_key_is_read_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    xdg = tmp_path / "xdg" / "memexfs"
    xdg.mkdir(parents=True)
    (xdg / "config.toml").write_text(FULL)
    cfg = config.load()
    assert cfg.source == xdg / "config.toml"
    assert (cfg.encoder, cfg.excludes, cfg.state_root) == \
        ("minilm", ("*.iso", "Archive/"), tmp_path / "states")
    assert cfg.mount == config.MountDefaults(True, False, True, date(2024, 5, 1), "ternary",
                                             "http://q:6333", "warning")
    assert cfg.search.k == 7
    assert {f.name for f in fields(config.MountDefaults)} == set(config._MOUNT)
    assert {f.name for f in fields(config.SearchDefaults)} == set(config._SEARCH)


def test_a_date_may_be_a_string(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mount]\ntoday = "2023-12-31"\n'))
    assert cfg.mount.today == date(2023, 12, 31)


@pytest.mark.parametrize(("text", "words"), [
    ("encodr = 'x'\n", ["unknown key 'encodr'", "known: encoder"]),
    ("[mount]\nallow_others = true\n", ["unknown key 'mount.allow_others'"]),
    ("[mount]\nallow_other = 'yes'\n", ["mount.allow_other: expected a boolean", "string"]),
    ("[search]\nk = 0\n", ["search.k: expected a whole number from 1 up"]),
    ("[search]\nk = true\n", ["search.k: expected a whole number", "boolean"]),
    ("excludes = '*.iso'\n", ["excludes: expected a list of strings"]),
    ("state_root = 'relative/dir'\n", ["state_root: expected an absolute path"]),
    ("[mount]\nlog_level = 'loud'\n", ["mount.log_level: expected one of debug, info"]),
    ("[mount]\ntoday = '2024-13-01'\n", ["mount.today: expected a date (YYYY-MM-DD)"]),
    ("mount = 3\n", ["mount: expected a table"]),
    ("encoder = \n", ["not valid TOML"]),
])
def test_bad_files_are_one_clear_line(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}: ")
    for word in words:
        assert word in str(err.value)


def test_a_named_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(config.ConfigError, match="nope.toml: no such config file"):
        config.load()


def test_the_cli_says_it_in_one_line_rc2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[search]\nk = 'ten'\n")
    assert cli.main(["--config", str(path), "search", str(tmp_path), "x"]) == 2
    err = capsys.readouterr().err
    assert err == f"memexfs: {path}: search.k: expected a whole number from 1 up, " \
                  "got string 'ten'\n"


def parsed(cfg: config.Config, *argv: str) -> tuple[argparse.Namespace, config.Config]:
    a = cli.build_parser().parse_args(list(argv))
    if a.cmd == "mount":
        cli.apply_mount_options(a)
    return a, cli.apply_config(a, cfg)


def test_command_line_beats_file_beats_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, FULL))
    a, _ = parsed(cfg, "mount", "V", "M")
    assert (a.allow_other, a.no_watch, a.today, a.encoder, a.qdrant_url, a.log_level) == \
        (True, True, date(2024, 5, 1), "ternary", "http://q:6333", "warning")
    a, _ = parsed(cfg, "mount", "V", "M", "--no-allow-other", "--watch", "--encoder", "minilm",
                  "-o", "today=2020-01-02,qdrant_url=http://other:6333")
    assert (a.allow_other, a.no_watch, a.today, a.encoder, a.qdrant_url) == \
        (False, False, date(2020, 1, 2), "minilm", "http://other:6333")
    a, _ = parsed(config.Config(), "mount", "V", "M")
    assert (a.allow_other, a.no_watch, a.today, a.encoder) == (False, False, None, None)
    a, _ = parsed(cfg, "search", "V", "q")
    assert (a.k, a.encoder) == (7, "minilm")
    a, _ = parsed(cfg, "search", "V", "q", "-k", "3", "--encoder", "ternary")
    assert (a.k, a.encoder) == (3, "ternary")
    a, _ = parsed(cfg, "index", "V")
    assert a.encoder == "minilm"


def test_read_only_from_the_file_is_refused_unless_rw(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "[mount]\nro = true\n"))
    with pytest.raises(cli.CliError, match=r"ro = true in .*config.toml; -o rw overrides it"):
        parsed(cfg, "mount", "V", "M")
    a, _ = parsed(cfg, "mount", "V", "M", "-o", "rw")
    assert a.ro is False


def test_state_dir_flag_and_mount_option(tmp_path: Path) -> None:
    _, cfg = parsed(config.Config(), "status", str(tmp_path), "--state-dir", "rel/st")
    assert cfg.state_dir == Path.cwd() / "rel" / "st"
    _, cfg = parsed(config.Config(), "mount", "V", "M", "-o", f"state_dir={tmp_path}/s")
    assert cfg.state_dir == tmp_path / "s"
    _, cfg = parsed(config.Config(), "check", "V")
    assert cfg.state_dir is None


# ------------------------------------------------------------------------------ state folder
def test_escaped_names_are_systemd_escape_path() -> None:
    assert escape_path("/home/me/Documents") == "home-me-Documents"
    assert escape_path("/tmp/a b/ü-x/.hidden/") == "tmp-a\\x20b-\\xc3\\xbc\\x2dx-.hidden"
    assert escape_path("/") == "-"
    assert escape_path("/a-b") != escape_path("/a/b")


def test_where_state_lives(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    assert state_path(root) == root / STATE_DIR
    with config.activate(config.Config(state_root=tmp_path / "states")):
        assert state_path(root) == tmp_path / "states" / escape_path(root)
        assert state_path(root, tmp_path / "x") == tmp_path / "x"
        with config.activate(replace(config.current(), state_dir=tmp_path / "y")):
            assert state_path(root) == tmp_path / "y"
            assert Vault(root).state == tmp_path / "y"
        assert Vault(root).state == tmp_path / "states" / escape_path(root)
    assert config.current() == config.Config()


def test_outside_state_belongs_to_one_vault_and_writes_nothing_inside(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    vault = Vault.open(a, state)
    assert vault.state == state
    assert list(a.iterdir()) == []
    assert state.stat().st_mode & 0o077 == 0
    assert Vault.open(a, state).state == state  # again: the same vault
    with pytest.raises(MemexError, match="belongs to the vault"):
        Vault.open(b, state)
    with pytest.raises(MemexError, match="inside the vault"):
        Vault.open(a, a / "st")
    assert list(a.iterdir()) == []


def test_locate_finds_outside_state_from_inside_the_vault(tmp_path: Path) -> None:
    vault, state = tmp_path / "vault", tmp_path / "state"
    (vault / "sub").mkdir(parents=True)
    with pytest.raises(api.NotIndexed, match="not indexed"):
        api.locate(str(vault / "sub"), state_dir=state)
    assert not state.exists()
    Vault.open(vault, state)
    assert api.locate(str(vault / "sub"), state_dir=state).root == str(vault)
    with pytest.raises(MemexError, match="not inside"):
        api.locate(str(tmp_path), state_dir=state)
    with config.activate(config.Config(state_root=tmp_path / "states")):
        with pytest.raises(api.NotIndexed):
            api.locate(str(vault / "sub"))
        Vault.open(vault)
        assert api.locate(str(vault / "sub")).root == str(vault)
    assert not (vault / STATE_DIR).exists()


def test_config_excludes_come_before_memexignore(tmp_path: Path) -> None:
    for name in ("a.iso", "b.iso", "keep.txt", "Archive/old.txt", ".git/HEAD"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".memexignore").write_text("!b.iso\n")
    with config.activate(config.Config(excludes=("*.iso", "Archive/"))):
        listed = sorted(rel for rel, _ in Vault.open(tmp_path).iter_files())
    assert listed == [".memexignore", "b.iso", "keep.txt"]


# ------------------------------------------------------------------------------ progress
class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def stats(state: str, done: int, queued: int) -> SimpleNamespace:
    return SimpleNamespace(state=state, done_since_start=done, queued=queued, failed=0)


def test_progress_total_is_fixed_once_indexing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    totals = []
    with cli.Progress() as progress:
        # as the indexer reports: the count grows while reconciling, then lags behind
        for st in [stats("reconciling", 0, 0), stats("reconciling", 0, 120),
                   stats("indexing", 0, 120), stats("indexing", 64, 120),
                   stats("indexing", 96, 120), stats("idle", 120, 0)]:
            progress(st)
            totals.append(progress.bar.total if progress.bar else None)
        assert progress.bar.n == 120
    assert totals == [None, None, 120, 120, 120, 120]
    out = err.getvalue()
    assert "120/120" in out
    assert "/184" not in out
    assert "/216" not in out
    assert "<" in out  # elapsed<remaining: the ETA


def test_progress_grows_only_for_new_work_and_is_silent_off_a_tty(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", Tty())
    progress = cli.Progress()
    progress(stats("indexing", 0, 10))
    progress(stats("indexing", 12, 3))  # files added meanwhile
    assert progress.bar.total == 15
    progress.close()
    quiet = io.StringIO()
    monkeypatch.setattr("sys.stderr", quiet)
    with cli.Progress() as progress:
        progress(stats("indexing", 5, 5))
        assert progress.bar is None
    assert quiet.getvalue() == ""
