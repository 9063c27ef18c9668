"""The command line's conventions, without a mount: one-line usage errors (rc 2), mount(8)
argv and -o options, Ctrl-C (also inside trio's exception groups), a closed stdout."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from memexfs import cli
from tests.mounting import REPO, memexfs_cmd, one_line


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memexfs_cmd(*args), capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_version() -> None:
    res = run("--version")
    assert res.returncode == 0
    assert res.stdout.startswith("memexfs ")


@pytest.mark.parametrize("args", [(), ("search",), ("search", "/tmp", "x", "--bogus"),
                                  ("search", "/tmp", "x", "-k", "0"), ("nosuch", "a")])
def test_usage_errors_are_one_line_rc2(args: tuple[str, ...]) -> None:
    one_line(run(*args), 2)


@pytest.mark.parametrize(("opts", "msg"), [("ro", "read-only"),
                                           ("rw,bogus", "unknown mount option"),
                                           ("today=2024-13-01", "not a date")])
def test_bad_mount_options_are_usage_errors(tmp_path: Path, opts: str, msg: str) -> None:
    assert msg in one_line(run("mount", str(tmp_path), str(tmp_path / "m"), "-o", opts), 2)


def test_unknown_encoder_is_refused_before_forking(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    line = one_line(run("mount", str(tmp_path / "v"), str(tmp_path / "m"), "--encoder", "x"), 2)
    assert "unknown encoder 'x'" in line
    assert "ternary" in line


def test_grammar_error_unmounted_is_rc2_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / ".memexfs").mkdir()
    line = one_line(run("search", str(tmp_path), "after:2023-13"), 2)
    assert "month must be in 1..12" in line


def test_unindexed_folder_creates_nothing(tmp_path: Path) -> None:
    assert "not indexed: run memexfs index" in one_line(run("search", str(tmp_path), "x"), 1)
    assert not (tmp_path / ".memexfs").exists()


def test_mount_helper_argv_becomes_a_mount_command() -> None:
    assert cli._as_command(["SRC", "MNT", "-o", "rw,allow_other"], "memexfs") == \
        ["mount", "SRC", "MNT", "-o", "rw,allow_other"]
    assert cli._as_command(["SRC", "MNT", "-n", "-s", "-o", "rw", "-t", "fuse.memexfs"],
                           "mount.fuse.memexfs") == ["mount", "SRC", "MNT", "-o", "rw"]
    assert cli._as_command(["status", "X"], "memexfs") == ["status", "X"]


def test_mount_options_fold_into_flags() -> None:
    a = cli.build_parser().parse_args(
        ["mount", "S", "M", "-o", "rw,_netdev,noauto,x-systemd.automount,nofail,allow_other",
         "-o", "today=2024-05-01,encoder=minilm,no_watch,qdrant_url=http://q:6333"])
    cli.apply_mount_options(a)
    assert (a.allow_other, a.no_watch, a.encoder, a.qdrant_url) == \
        (True, True, "minilm", "http://q:6333")
    assert a.today.isoformat() == "2024-05-01"


def test_ctrl_c_inside_an_exception_group_is_one_line_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(a: argparse.Namespace) -> int:
        raise BaseExceptionGroup("trio", [BaseExceptionGroup("inner", [KeyboardInterrupt()])])

    monkeypatch.setitem(cli.COMMANDS, "status", interrupted)
    assert cli.main(["status", "/nowhere"]) == 130
    assert capsys.readouterr().err == "memexfs: interrupted\n"


def test_an_error_inside_an_exception_group_is_its_own_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def failing(a: argparse.Namespace) -> int:
        raise BaseExceptionGroup("trio", [cli.CliError("the reason", 3)])

    monkeypatch.setitem(cli.COMMANDS, "status", failing)
    assert cli.main(["status", "/nowhere"]) == 3
    assert capsys.readouterr().err == "memexfs: the reason\n"


def test_closed_pipe_is_silent(tmp_path: Path) -> None:
    (tmp_path / ".memexfs").mkdir()
    for n in range(3):
        (tmp_path / f"f{n}").write_text("x")
    cmd = " ".join(f"'{c}'" for c in memexfs_cmd("--help"))
    res = subprocess.run(f"{cmd} | head -c1 >/dev/null; echo ${{PIPESTATUS[0]}}", shell=True,
                         executable="/bin/bash", capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert res.stderr == ""
    assert res.stdout.strip() in ("0", "141")


def test_rows_with_tabs_and_newlines_stay_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from memexfs.api import Result, Results

    name = "a\tb\nc.txt"
    got = Results([Result(f"/v/{name}", name, 0.5, 1, "s", name)])
    a = argparse.Namespace(quiet=False, json=False, relative=True, null=False, paths=False)
    assert cli._print_results(a, got) == 0
    assert capsys.readouterr().out == "  1  0.500  a\\tb\\nc.txt\n"
    a.json = True
    cli._print_results(a, got)
    import json
    assert json.loads(capsys.readouterr().out)["results"][0]["path"] == name
    a.json, a.quiet = False, True
    assert cli._print_results(a, Results([])) == 1
    assert os.environ  # the environment is untouched by main()


@pytest.mark.timeout(300)
def test_check_repair_moves_a_corrupt_index_aside_quietly(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.txt").write_text("electricity bill from Volta Power")
    assert run("index", str(vault)).returncode == 0
    trackers = list((vault / ".memexfs" / "index").rglob("tracker.dat"))
    assert trackers
    for p in trackers:  # random bytes over the id tracker: Qdrant Edge panics on it
        with open(p, "r+b") as f:
            f.write(os.urandom(min(p.stat().st_size, 1 << 16)))
    broken = run("check", str(vault))
    assert broken.returncode != 0
    assert "RUST_BACKTRACE" not in broken.stderr  # the child's panic text is in store.log
    assert "thread '" not in broken.stderr
    assert broken.stderr.strip().splitlines()[-1].endswith(f"memexfs check --repair {vault}")
    res = run("check", "--repair", str(vault))
    assert res.returncode == 0, res.stderr
    assert "moved it to" in res.stdout
    assert "re-indexes" in res.stdout
    assert res.stderr == ""
    assert list((vault / ".memexfs").glob("index.corrupt-*"))
    assert (vault / ".memexfs" / "store.log").stat().st_mode & 0o077 == 0


def test_man_page_and_completions_are_generated_from_the_parser() -> None:
    """docs/ matches scripts/gen_cli_docs.py's output, and each shell completes every option of
    every command (zsh and fish included: issue 12)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs",
                                                  REPO / "scripts" / "gen_cli_docs.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    p = cli.build_parser()
    texts = dict(zip(gen.OUTPUTS, (gen.man_page(p), gen.bash_completion(p),
                                   gen.zsh_completion(p), gen.fish_completion(p)), strict=True))
    for name, text in texts.items():
        assert (REPO / "docs" / name).read_text() == text, f"run scripts/gen_cli_docs.py ({name})"
    zsh, fish = texts["_memexfs"], texts["memexfs.fish"]
    assert zsh.startswith("#compdef memexfs\n")
    for name, sub in gen._subparsers(p).items():
        assert f"    '{name}:" in zsh
        assert f"-f -a {name} " in fish
        for flag in (f for a in sub._actions for f in a.option_strings):
            assert f"'{flag}[" in zsh, (name, flag)
            fish_flag = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            assert any(line.startswith(f"complete -c memexfs -n '__fish_seen_subcommand_from "
                                       f"{name}'") and fish_flag in line
                       for line in fish.splitlines()), (name, flag)
    assert "--state-dir[" in zsh
    assert ":DIR:_files -/" in zsh
