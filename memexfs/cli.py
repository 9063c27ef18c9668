"""The ``memexfs`` command: mount, umount, status, index, search, related, check.

Exit codes (documented in README): 0 success; 1 error (or, with ``search -q``, no match);
2 bad usage or a query the grammar refuses; 3 vault busy (mounted or locked by another
process); 4 not a MemexFS mount; 5 timed out waiting (status --wait); 130 interrupted (Ctrl-C);
141 stdout closed early (``| head``), silently. Errors are one line on stderr, never a traceback
(``--debug`` shows tracebacks). Invoked as ``mount.memexfs``/``mount.fuse.memexfs``, or as
``memexfs SRC MNT -o opts`` (what mount.fuse3 runs for ``mount -t fuse.memexfs``), it mounts.

Size: the parser is also the source of the man page and of the bash/zsh/fish completion
(scripts/gen_cli_docs.py), so every option's help text and examples live here; the commands
themselves are thin calls into :mod:`memexfs.api`, :mod:`mount.daemon` and the config.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from memexfs import api, cli_knowledge, config
from memexfs.errors import BadQuery, IndexUnavailable, MemexError, VaultLocked
from memexfs.fields_memory import DocFields
from memexfs.vault import state_path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUSY, EXIT_NOT_MOUNTED, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
CTL = ".memexfs"
PROBE_S = 5.0  # a control file that does not answer within this belongs to a hung daemon
# Read the control file in a child: a caller of a dead mount can be stuck in D state for good,
# and a thread of ours stuck like that would keep this command from ever exiting.
_PROBE = """import os, sys
try:
    sys.stdout.write(os.getxattr(sys.argv[1], "user.memex.stats").decode())
except OSError as exc:
    sys.stdout.write(str(exc.errno))
    sys.exit(3)
"""
_probes: list[subprocess.Popen[bytes]] = []


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Unresponsive(Exception):
    """The mount's daemon is dead or does not answer; ``why`` says which, for the user."""

    def __init__(self, mnt: str, why: str) -> None:
        super().__init__(f"{mnt}: {why}")
        self.mnt, self.why = mnt, why


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 up: {value!r}")
    return n


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``memexfs: ...``), rc 2, like every other error here."""

    def error(self, message: str) -> NoReturn:
        cmd = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""
        self.exit(EXIT_USAGE, f"memexfs: {message} (see memexfs {cmd}--help)\n")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("memexfs")
    except PackageNotFoundError:
        import memexfs

        return memexfs.__version__


EXIT_CODES = ("exit codes: 0 ok; 1 error (search -q: nothing matched); 2 bad usage or query; "
              "3 vault busy; 4 not a MemexFS mount; 5 timed out; 130 interrupted")
CONFIG_HELP = ("config: $XDG_CONFIG_HOME/memexfs/config.toml (~/.config/...; MEMEXFS_CONFIG or "
               "--config FILE\n"
               "  name another) sets defaults; the command line wins. Keys: encoder, excludes "
               "(gitignore\n"
               "  patterns), state_root (each vault's state in state_root/<escaped path>); "
               "[mount]\n"
               "  allow_other, ro, no_watch, today, encoder, qdrant_url, log_level; [search] k. "
               "Example:\n"
               '    encoder = "ternary"\n'
               '    excludes = ["*.iso", "Archive/"]\n'
               '    state_root = "~/.local/state/memexfs"\n'
               "    [mount]\n    allow_other = true\n    [search]\n    k = 10")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = OneLineParser(
        prog="memexfs", formatter_class=fmt,
        description="A semantic filesystem: your files, plus folders that are searches.",
        epilog="examples:\n"
               "  memexfs mount ~/Documents ~/memex\n"
               "  ls ~/memex/q/'electricity bills last quarter'/\n"
               "  memexfs search ~/memex 'invoices from acme unpaid' --paths | xargs grep -l IBAN\n"
               "  mount -t fuse.memexfs ~/Documents ~/memex -o allow_other\n\n"
               + CONFIG_HELP + "\n\n" + EXIT_CODES)
    p.add_argument("--version", action="version", version=f"memexfs {version()}")
    p.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    p.add_argument("--config", metavar="FILE",
                   help="defaults from FILE (default: $MEMEXFS_CONFIG, else "
                        "$XDG_CONFIG_HOME/memexfs/config.toml)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def state(c: argparse.ArgumentParser) -> None:
        c.add_argument("--state-dir", metavar="DIR",
                       help="the vault's index, catalog, lock and logs in DIR instead of "
                            "VAULT/.memexfs (or the config's state_root); give it to every "
                            "command on that vault")

    m = sub.add_parser("mount", help="mount a vault", formatter_class=fmt,
                       description="Mount VAULT on MOUNTPOINT; returns once the mount is live.",
                       epilog="examples:\n  memexfs mount ~/Documents ~/memex\n"
                              "  memexfs mount ~/Documents ~/memex -o allow_other,no_watch\n"
                              "fstab:\n  /home/me/Documents /home/me/memex fuse.memexfs "
                              "noauto,allow_other 0 0")
    m.add_argument("source", metavar="VAULT", help="the folder of documents to serve")
    m.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty folder to mount on")
    m.add_argument("--foreground", "-f", action="store_true",
                   help="stay in the foreground (logs on stderr)")
    m.add_argument("--allow-other", action=argparse.BooleanOptionalAction,
                   help="let other users in (adds default_permissions)")
    m.add_argument("--today", type=_date, help="reference date for 'last quarter' etc.")
    m.add_argument("--encoder", help="encoder name (default: the package default)")
    m.add_argument("--qdrant-url", help="keep the index on a Qdrant server (remembered)")
    m.add_argument("--no-watch", action="store_true", default=None,
                   help="don't watch the vault for changes made around the mount")
    m.add_argument("--watch", action="store_false", dest="no_watch", default=None,
                   help="watch it (the default; overrides the config's no_watch)")
    m.add_argument("--nonempty", action="store_true",
                   help="mount even over a folder that has files (they are hidden meanwhile)")
    m.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="mount(8)-style options: allow_other, today=, encoder=, no_watch, "
                        "qdrant_url=, state_dir=, nonempty, rw; _netdev, noauto, "
                        "x-systemd.* ... ignored")
    m.add_argument("--debug", action="store_true", dest="fuse_debug",
                   help="log every FUSE request and verbose daemon logs")
    m.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="daemon log level (default: info; debug with --debug)")
    m.add_argument("--log-file", metavar="PATH",
                   help="daemon log (default: VAULT/.memexfs/daemon.log, mode 0600, rotated; "
                        "stderr with --foreground)")
    m.set_defaults(ro=None)  # -o ro / -o rw
    state(m)

    u = sub.add_parser("umount", help="unmount cleanly",
                       description="Unmount; a dead or hung daemon's mount is detached.")
    u.add_argument("mountpoint", help="a MemexFS mountpoint")
    u.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the daemon to exit (default 10)")

    s = sub.add_parser("status", help="index state of a mount or a vault")
    s.add_argument("path", help="a mountpoint or a vault")
    s.add_argument("--wait", action="store_true", help="return when the index is idle")
    s.add_argument("--timeout", type=float, default=600.0,
                   help="seconds --wait waits (default 600; then exit 5)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    state(s)

    i = sub.add_parser("index", help="index a vault that is not mounted (bulk)")
    i.add_argument("source", metavar="VAULT", help="the folder to index")
    i.add_argument("--encoder", help="encoder name (default: the package default)")
    i.add_argument("--qdrant-url", help="keep the index on a Qdrant server (remembered)")
    state(i)

    def output(c: argparse.ArgumentParser) -> None:
        c.add_argument("--json", action="store_true",
                       help="JSON: rank, score, path (vault-relative), abs_path, snippet, title")
        c.add_argument("--relative", action="store_true",
                       help="print vault-relative paths (default: absolute)")
        c.add_argument("--paths", action="store_true", help="paths only, one per line")
        c.add_argument("-0", "--null", action="store_true",
                       help="paths only, each ended by NUL (for xargs -0); names exact")
        c.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing; exit 1 when nothing matches (like grep -q)")
        c.add_argument("--encoder", help="encoder name, when the vault is not mounted")
        state(c)

    q = sub.add_parser("search", help="search a vault (the same engine as /q folders)",
                       formatter_class=fmt,
                       epilog="examples:\n  memexfs search ~/memex 'electricity bills 2024'\n"
                              "  memexfs search ~/Documents 'unpaid invoices' -0 | xargs -0 ls -l")
    q.add_argument("source", metavar="WHERE", help="a vault, its mountpoint, or a path in either")
    q.add_argument("query", nargs="+", help="the query, as a /q folder name")
    q.add_argument("-k", type=_positive, default=None,
                   help="number of results (default: the config's [search] k, else the query's)")
    q.add_argument("--today", type=_date, help="reference date (unmounted only)")
    output(q)

    r = sub.add_parser("related", help="files most similar to a file", formatter_class=fmt,
                       epilog="example:\n  memexfs related ~/memex ~/memex/notes/plan.md -k 5")
    r.add_argument("source", metavar="WHERE", help="a vault, its mountpoint, or a path in either")
    r.add_argument("path", help="the file: in the mount, in the vault, or vault-relative")
    r.add_argument("-k", type=_positive, default=20, help="number of results (default 20)")
    output(r)

    c = sub.add_parser("check", help="verify that vault, catalog and chunks agree")
    c.add_argument("source", metavar="VAULT")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--repair", action="store_true",
                   help="move an index that cannot be opened aside (re-indexed next time)")
    state(c)
    cli_knowledge.add_parsers(sub)
    return p


# ------------------------------------------------------------------------------ helpers
memex_mounts = api.memex_mounts
_lexical = api.lexical
_mount_of = api.mount_of


def _mount_of_vault(source: str) -> str | None:
    return api.mount_of_vault(os.path.realpath(source))


def _vault_daemon(source: str) -> int:
    """The pid ``mount.json`` names (0 if none)."""
    from memexfs.vault import Vault

    try:
        return int(Vault(Path(source).resolve()).read_json("mount.json").get("pid", 0))
    except (TypeError, ValueError):
        return 0


def _stats(mnt: str, deadline: float = PROBE_S) -> dict[str, Any]:
    """The daemon's stats; raises Unresponsive for a dead or hung daemon."""
    probe = subprocess.Popen([sys.executable, "-I", "-S", "-c", _PROBE, os.path.join(mnt, CTL)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, cwd="/")
    try:
        out, _ = probe.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        probe.kill()  # it may stay in D state until the connection is aborted: don't wait
        _probes.append(probe)
        raise Unresponsive(mnt, f"does not answer (no status within {deadline:g}s)") from None
    text = out.decode(errors="replace")
    if probe.returncode == 0:
        return dict(json.loads(text))
    err = int(text) if text.isdigit() else errno.EIO
    if err in (errno.ENOTCONN, errno.ECONNABORTED):
        raise Unresponsive(mnt, "is gone (the connection is closed)")
    raise CliError(f"{mnt}: cannot read index status ({os.strerror(err)})")


def _recover(mnt: str, why: str) -> bool:
    """Abort a dead or hung daemon's connection and detach its mount, in one line on stderr."""
    from mount.supervisor import recover

    notes: list[str] = []
    ok = recover(mnt, notes.append)
    for probe in _probes:  # the abort freed them
        with contextlib.suppress(subprocess.TimeoutExpired):
            probe.wait(timeout=2)
    if ok:
        print(f"memexfs: {mnt}: the daemon {why}; aborted its connection and detached the mount",
              file=sys.stderr)
    else:
        detail = notes[0] if notes else "the mount is gone"
        print(f"memexfs: {mnt}: the daemon {why}; recovery failed: {detail}", file=sys.stderr)
    return ok


def _daemon_alive(pid: int) -> bool:
    from mount.supervisor import leader_gone

    return pid > 0 and not leader_gone(pid)


@contextlib.contextmanager
def _memex(source: str, qdrant_url: str | None = None, encoder: str | None = None,
           create: bool = True) -> Iterator[api.Memex]:
    """The vault at ``source``, opened offline by the caller; its store under umask 077."""
    if create and not os.path.isdir(source):
        raise CliError(f"{source}: not a directory")
    os.umask(api.OFFLINE_UMASK)  # index, catalog and logs are the owner's alone
    memex = api.Memex(source, qdrant_url=qdrant_url, encoder=encoder, create=create)
    try:
        yield memex
    except VaultLocked as exc:
        raise CliError(f"{source}: {exc}", EXIT_BUSY) from None
    finally:
        memex.close()


@contextlib.contextmanager
def offline(source: str, qdrant_url: str | None = None) -> Iterator[tuple[Any, Any]]:
    """A vault that no daemon serves, locked for us: (vault, store), closed on exit. The store
    child's log (a panic included) goes to ``.memexfs/store.log``, not the terminal."""
    with _memex(source, qdrant_url) as memex:
        yield memex.offline()


# ------------------------------------------------------------------------------ commands
# mount(8) and fstab options that say nothing to a FUSE daemon (mount.fuse3 drops some itself).
IGNORED_OPTIONS = frozenset({"_netdev", "noauto", "auto", "user", "nouser", "users", "owner",
                             "rw", "defaults", "nofail", "dev", "nodev", "suid", "nosuid",
                             "exec", "noexec", "async", "sync", "atime", "noatime", "relatime",
                             "nodiratime", "diratime", "strictatime", "lazytime", "loud",
                             "silent"})


READ_ONLY = "read-only mounts (-o ro) are not supported: the mount writes through to the vault"


def apply_mount_options(a: argparse.Namespace) -> None:
    """Fold ``-o opt,opt`` into the parsed flags; unknown options are usage errors."""
    for group in a.options:
        for opt in filter(None, group.split(",")):
            key, eq, value = opt.partition("=")
            if opt in ("ro", "rw"):  # rw is mount(8)'s default; it overrides the config's ro
                a.ro = opt == "ro"
            elif opt in IGNORED_OPTIONS or key.startswith(("x-", "comment")):
                continue
            elif opt in ("allow_other", "no_watch", "nonempty", "debug"):
                setattr(a, {"debug": "fuse_debug"}.get(opt, opt), True)
            elif eq and key in ("today", "encoder", "qdrant_url", "state_dir") and value:
                try:
                    setattr(a, key, _date(value) if key == "today" else value)
                except argparse.ArgumentTypeError as exc:
                    raise CliError(f"-o {opt}: {exc}", EXIT_USAGE) from None
            else:
                raise CliError(f"unknown mount option: {opt}", EXIT_USAGE)
    if a.ro:
        raise CliError(READ_ONLY, EXIT_USAGE)


def apply_config(a: argparse.Namespace, cfg: config.Config) -> config.Config:
    """Fill in what the command line left unsaid from the config file (command line > file >
    built-in defaults); returns the config to activate, with ``--state-dir`` in it."""
    if a.cmd == "mount":
        m = cfg.mount
        if a.ro is None and m.ro:
            raise CliError(f"{READ_ONLY} (ro = true in {cfg.source}; -o rw overrides it)",
                           EXIT_USAGE)
        a.allow_other = m.allow_other if a.allow_other is None else a.allow_other
        a.no_watch = m.no_watch if a.no_watch is None else a.no_watch
        a.today = a.today or m.today
        a.encoder = a.encoder or m.encoder
        a.qdrant_url = a.qdrant_url or m.qdrant_url
        a.log_level = a.log_level or m.log_level
    if getattr(a, "encoder", ...) is None:
        a.encoder = cfg.encoder
    if a.cmd == "search" and a.k is None:
        a.k = cfg.search.k
    state_dir = getattr(a, "state_dir", None)
    return replace(cfg, state_dir=Path(state_dir).expanduser().absolute()) if state_dir else cfg


def _check_mountable(a: argparse.Namespace) -> None:
    """Causes the daemon would only find after forking, said here with the real reason."""
    from embed import ENCODER_NAMES

    if a.encoder is not None and a.encoder not in ENCODER_NAMES:
        raise CliError(f"unknown encoder {a.encoder!r} (choose from {', '.join(ENCODER_NAMES)})",
                       EXIT_USAGE)
    if not os.path.exists("/dev/fuse"):
        raise CliError("/dev/fuse is missing: load the fuse module (modprobe fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise CliError("/dev/fuse: permission denied (ask for access to /dev/fuse, e.g. the "
                       "fuse group, or mount as root)")
    if os.path.isdir(a.mountpoint) and not a.nonempty:
        with contextlib.suppress(OSError):
            if os.listdir(a.mountpoint):
                raise CliError(f"mountpoint {a.mountpoint} is not empty (its files would be "
                               "hidden): empty it or pass --nonempty")


def cmd_mount(a: argparse.Namespace) -> int:
    from mount.daemon import MountOptions, run_mount

    if _mount_of(a.mountpoint) == os.path.realpath(a.mountpoint):
        raise CliError(f"{a.mountpoint} is already a MemexFS mount", EXIT_BUSY)
    _check_mountable(a)
    if getattr(a, "fake", False):  # mount -f: everything checked, nothing mounted
        return EXIT_OK
    opts = MountOptions(a.source, a.mountpoint, foreground=a.foreground,
                        allow_other=a.allow_other, debug=a.fuse_debug or a.debug,
                        today=a.today, encoder=a.encoder, watch=not a.no_watch,
                        qdrant_url=a.qdrant_url, log_level=a.log_level, log_file=a.log_file)
    try:
        return run_mount(opts)
    except VaultLocked as exc:
        raise CliError(f"{a.source}: {exc}", EXIT_BUSY) from None


def cmd_umount(a: argparse.Namespace) -> int:
    mnt = _lexical(a.mountpoint)
    if mnt not in memex_mounts():
        raise CliError(f"{a.mountpoint} is not a MemexFS mount", EXIT_NOT_MOUNTED)
    try:
        pid = int(_stats(mnt, min(PROBE_S, a.timeout)).get("pid", 0))
    except Unresponsive as exc:  # unmounted as asked, the hard way
        return EXIT_OK if _recover(mnt, exc.why) else EXIT_ERROR
    except CliError:
        pid = 0
    res = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
    if res.returncode != 0:
        raise CliError(f"unmount failed: {res.stderr.strip() or res.stdout.strip()}")
    deadline = time.monotonic() + a.timeout
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return EXIT_OK


def _format_status(st: dict[str, Any]) -> str:
    lines = [
        f"state:      {st.get('state')}" + (f" ({st['current']})" if st.get("current") else ""),
        f"files:      {st.get('files', 0)}  indexed {st.get('indexed', 0)}  "
        f"metadata-only {st.get('metadata_only', 0)}  failed {st.get('failed', 0)}  "
        f"queued {st.get('queued', 0)}",
        f"encoder:    {st.get('encoder') or '-'}   throughput {st.get('files_per_s', 0)} files/s",
    ]
    errors = st.get("errors") or {}
    for path, err in sorted(errors.items())[:20]:
        lines.append(f"  ! {path}: {err}")
    if len(errors) > 20:
        lines.append(f"  ... {len(errors) - 20} more (see --json)")
    return "\n".join(lines)


def cmd_status(a: argparse.Namespace) -> int:
    try:
        return _status(a)
    except Unresponsive as exc:  # no status to show: the mount was dead, and now it is gone
        _recover(exc.mnt, exc.why)
        return EXIT_ERROR


def _status(a: argparse.Namespace) -> int:
    mnt = _mount_of(a.path)
    if mnt is None and os.path.isdir(a.path):
        mnt = _mount_of_vault(a.path)
        pid = _vault_daemon(a.path)
        if mnt and not _daemon_alive(pid):
            raise Unresponsive(mnt, f"(pid {pid}) is dead")
    if mnt is None:
        if not state_path(Path(os.path.realpath(a.path))).is_dir():
            raise CliError(f"{a.path}: not a MemexFS mount or vault", EXIT_NOT_MOUNTED)
        st = _offline_status(a.path)
    else:
        deadline = time.monotonic() + a.timeout
        st = _stats(mnt)
        while a.wait and not (st.get("state") == "idle" and not st.get("queued")):
            if st.get("state") == "error":
                break
            if time.monotonic() > deadline:
                print(_format_status(st), file=sys.stderr)
                raise CliError("timed out waiting for the index to go idle", EXIT_TIMEOUT)
            if not a.json and sys.stderr.isatty():
                print(f"\r{st.get('state')}: {st.get('queued')} queued, "
                      f"{st.get('indexed')} indexed ", end="", file=sys.stderr)
            time.sleep(0.2)
            st = _stats(mnt)
        st["mountpoint"] = mnt
    print(json.dumps(st, indent=2) if a.json else _format_status(st))
    return EXIT_ERROR if st.get("state") == "error" else EXIT_OK


def _offline_status(source: str) -> dict[str, Any]:
    with _memex(source) as memex:
        memex.offline()
        return memex.status()


def cmd_index(a: argparse.Namespace) -> int:
    mnt = _mount_of_vault(a.source) if os.path.isdir(a.source) else None
    if mnt is not None:
        print(f"{a.source} is mounted on {mnt}; its daemon indexes it. Waiting for idle.",
              file=sys.stderr)
        return cmd_status(argparse.Namespace(path=mnt, wait=True, timeout=86400, json=False))
    with _memex(a.source, a.qdrant_url, a.encoder) as memex, Progress() as progress:
        memex.offline()
        try:
            st = memex.index(progress=progress)
        except MemexError as exc:
            raise CliError(str(exc)) from None
        progress.finish(st)
        print(f"{st.done_since_start} files processed: {st.indexed} indexed, "
              f"{st.metadata_only} metadata-only, {st.failed} failed ({st.chunks} chunks)")
        return EXIT_OK


class Progress:
    """``memexfs index``'s bar (tqdm, with an ETA) on a terminal's stderr; elsewhere (a log, a
    pipe) only its last state, once, as one plain line.

    Its total is the work the scan queued, taken once the indexer starts indexing (while it
    reconciles the count is still growing; later ``queued`` lags behind the files done), and
    only ever raised if more files are done than that (files added meanwhile).
    """

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, st: Any) -> None:
        done = st.done_since_start
        if self.bar is None:
            if st.state not in ("indexing", "idle") or not sys.stderr.isatty():
                return
            from tqdm import tqdm

            self.bar = tqdm(total=done + st.queued, unit="file", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
        if done > self.bar.total:
            self.bar.total = done + st.queued
        self.bar.set_postfix(failed=st.failed, refresh=False)
        self.bar.update(done - self.bar.n)

    def finish(self, st: Any) -> None:
        """The final state: the bar's last update, or the one line a non-terminal gets."""
        if self.bar is None and not sys.stderr.isatty():
            print(f"{st.done_since_start}/{st.done_since_start + st.queued} files, "
                  f"{st.failed} failed", file=sys.stderr)
        else:
            self(st)
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ search, related
def _open_for_query(a: argparse.Namespace) -> api.Memex:
    """The vault ``a.source`` leads to; a mount's daemon is probed first (in a child), so a
    hung one is recovered instead of hanging this command."""
    try:
        memex = api.Memex(a.source, encoder=a.encoder, create=False)
    except api.NotIndexed as exc:
        raise CliError(str(exc)) from None
    except MemexError as exc:
        raise CliError(str(exc)) from None
    if memex.mountpoint is not None:
        if getattr(a, "today", None):
            raise CliError("--today is fixed by the mount (memexfs mount --today) while mounted",
                           EXIT_USAGE)
        _stats(memex.mountpoint)
    return memex


def _row(h: api.Result) -> dict[str, Any]:
    return {"rank": h.rank, "score": h.score, "cosine": h.cosine, "path": h.rel_path,
            "abs_path": h.path,
            "snippet": h.snippet, "title": h.title,
            "fields": (h.fields or DocFields()).to_json()}


def _print_results(a: argparse.Namespace, got: api.Results) -> int:
    """Print as asked; the exit code (1 for no match only with -q, like grep)."""
    if a.quiet:
        return EXIT_OK if got.hits else EXIT_ERROR
    if a.json:
        print(json.dumps({"results": [_row(h) for h in got.hits], "reason": got.reason},
                         indent=2))
        return EXIT_OK
    if not got.hits:
        print(f"no results{f': {got.reason}' if got.reason else ''}", file=sys.stderr)
    out = sys.stdout
    for h in got.hits:
        path = h.rel_path if a.relative else h.path
        if a.null:
            out.flush()
            sys.stdout.buffer.write(os.fsencode(path) + b"\0")
        elif a.paths:
            print(escape_field(path))
        else:
            print(f"{h.rank:>3}  {h.score:.3f}  {escape_field(path)}")
    return EXIT_OK


def escape_field(value: str) -> str:
    """One line whatever a file is called (the escapes of mount.virtual.escape_field)."""
    from mount.virtual import escape_field as escape

    return escape(value)


def _with_recovery(a: argparse.Namespace, run: Any) -> int:
    try:
        with _open_for_query(a) as memex:
            return int(run(memex))
    except Unresponsive as exc:
        _recover(exc.mnt, exc.why)
        return EXIT_ERROR
    except VaultLocked as exc:
        raise CliError(f"{a.source}: {exc}", EXIT_BUSY) from None


def cmd_search(a: argparse.Namespace) -> int:
    text = " ".join(a.query)
    return _with_recovery(a, lambda m: _print_results(a, m.query(text, a.k, a.today)))


def cmd_related(a: argparse.Namespace) -> int:
    return _with_recovery(a, lambda m: _print_results(a, m.related_results(a.path, a.k)))


def cmd_check(a: argparse.Namespace) -> int:
    from memexfs.check import check

    if a.repair:
        with _memex(a.source) as memex:
            moved = memex.repair()
            if moved is not None:
                print(f"{a.source}: the index could not be opened: moved it to {moved} and "
                      "started an empty one; the next mount or `memexfs index` re-indexes")
                return EXIT_OK
            print(f"{a.source}: the index opens; nothing to repair")
    try:
        with offline(a.source) as (vault, store):
            problems = check(vault, store)
    except IndexUnavailable as exc:
        raise CliError(f"{exc}; to start over: memexfs check --repair {a.source}") from None
    if a.json:
        print(json.dumps({"problems": problems}, indent=2))
    else:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_ERROR


COMMANDS = {"mount": cmd_mount, "umount": cmd_umount, "status": cmd_status, "index": cmd_index,
            "search": cmd_search, "related": cmd_related, "check": cmd_check}
COMMANDS.update(cli_knowledge.COMMANDS)


# ------------------------------------------------------------------------------ entry point
def _as_command(args: list[str], prog: str) -> list[str]:
    """mount(8) conventions -> our argv: ``mount.memexfs SRC MNT [-sfnv] [-o opts] [-t type]``
    (a helper), or ``memexfs SRC MNT -o opts`` (what mount.fuse3 runs; without ``-o`` an
    unknown first word stays a usage error, not a mount of a typo)."""
    helper = prog.startswith("mount.")
    if not helper and (not args or args[0] in COMMANDS or args[0].startswith("-")
                       or "-o" not in args):
        return args
    out, it = ["mount"], iter(args)
    for arg in it:
        if arg == "-t":  # the type: ours, whatever it says
            next(it, None)
        elif helper and arg in ("-s", "-n", "-v"):  # sloppy, no mtab, verbose: nothing to do
            continue
        elif helper and arg == "-f":  # mount -f: fake it
            out.append("--fake")
        else:
            out.append(arg)
    return out


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member groups, as trio raises them."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _closed_stdout() -> int:
    """stdout's reader went away (``| head``): be silent, as cat and grep are."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    prog = os.path.basename(sys.argv[0]) if argv is None else "memexfs"
    args = _as_command(list(sys.argv[1:] if argv is None else argv), prog)
    fake = "--fake" in args
    if fake:
        args.remove("--fake")
    parser = build_parser()
    try:
        a = parser.parse_args(args)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, already said)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    a.fake = fake
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING,
                        format="memexfs: %(message)s")
    try:
        try:
            if a.cmd == "mount":
                apply_mount_options(a)
            with config.activate(apply_config(a, config.load(a.config))):
                code = COMMANDS[a.cmd](a)
                sys.stdout.flush()
            return code
        except BaseExceptionGroup as group:
            leaf = _leaf(group)
            if group.subgroup(KeyboardInterrupt) is not None:
                raise KeyboardInterrupt from group
            if leaf is group:
                raise
            raise leaf from None
    except BrokenPipeError:
        return _closed_stdout()
    except KeyboardInterrupt:
        print("memexfs: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"memexfs: {exc}", file=sys.stderr)
        return exc.code
    except (BadQuery, config.ConfigError) as exc:
        print(f"memexfs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (MemexError, OSError) as exc:
        if a.debug:
            raise
        print(f"memexfs: {exc}", file=sys.stderr)
        return EXIT_BUSY if isinstance(exc, VaultLocked) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
