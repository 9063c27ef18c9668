"""The ``memexfs`` command: mount, umount, status, index, search, related, check.

Exit codes (documented in README): 0 success; 1 error; 2 bad usage; 3 vault busy (mounted or
locked by another process); 4 not a MemexFS mount; 5 timed out waiting (status --wait).
Errors are one line on stderr, never a traceback (``--debug`` shows tracebacks).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from memexfs.errors import MemexError, VaultLocked

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memexfs", description="A semantic filesystem.")
    p.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("mount", help="mount a vault")
    m.add_argument("source")
    m.add_argument("mountpoint")
    m.add_argument("--foreground", "-f", action="store_true")
    m.add_argument("--allow-other", action="store_true",
                   help="let other users in (adds default_permissions)")
    m.add_argument("--today", type=_date, help="reference date for 'last quarter' etc.")
    m.add_argument("--encoder", help="encoder name (default: the package default)")
    m.add_argument("--qdrant-url", help="keep the index on a Qdrant server (remembered)")
    m.add_argument("--no-watch", action="store_true",
                   help="don't watch the vault for changes made around the mount")
    m.add_argument("--debug", action="store_true", dest="fuse_debug",
                   help="log every FUSE request and verbose daemon logs")

    u = sub.add_parser("umount", help="unmount cleanly")
    u.add_argument("mountpoint")
    u.add_argument("--timeout", type=float, default=10.0)

    s = sub.add_parser("status", help="index state of a mount or a vault")
    s.add_argument("path")
    s.add_argument("--wait", action="store_true", help="return when the index is idle")
    s.add_argument("--timeout", type=float, default=600.0)
    s.add_argument("--json", action="store_true")

    i = sub.add_parser("index", help="index a vault that is not mounted (bulk)")
    i.add_argument("source")
    i.add_argument("--encoder")
    i.add_argument("--qdrant-url", help="keep the index on a Qdrant server (remembered)")

    q = sub.add_parser("search", help="search a vault (the same engine as /q folders)")
    q.add_argument("source")
    q.add_argument("query", nargs="+")
    q.add_argument("-k", type=int, default=None)
    q.add_argument("--json", action="store_true")
    q.add_argument("--today", type=_date)
    q.add_argument("--encoder")

    r = sub.add_parser("related", help="files most similar to a file")
    r.add_argument("source")
    r.add_argument("path")
    r.add_argument("-k", type=int, default=20)
    r.add_argument("--json", action="store_true")
    r.add_argument("--encoder")

    c = sub.add_parser("check", help="verify that vault, catalog and chunks agree")
    c.add_argument("source")
    c.add_argument("--json", action="store_true")
    return p


# ------------------------------------------------------------------------------ helpers
def _unescape(field: str) -> str:
    """A path as /proc/self/mounts writes it: space, tab, newline, backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def memex_mounts() -> dict[str, str]:
    """mountpoint -> source of every MemexFS mount (from /proc/self/mounts)."""
    out = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "fuse.memexfs":
                out[_unescape(parts[1])] = parts[0]
    return out


def _lexical(path: str) -> str:
    """``path`` made absolute with its folder resolved but not its last name: resolving a
    mountpoint stats it, which waits forever on a dead daemon."""
    a = os.path.abspath(path)
    head, tail = os.path.split(a)
    return os.path.join(os.path.realpath(head), tail) if tail else a


def _mount_of(path: str) -> str | None:
    """The MemexFS mountpoint that ``path`` is (or is inside), if any; matched by name first,
    so a hung mount is found without touching it."""
    mounts = sorted(memex_mounts(), key=len, reverse=True)
    for real in (resolve(path) for resolve in (_lexical, os.path.realpath)):
        for mnt in mounts:
            if real == mnt or real.startswith(mnt.rstrip("/") + "/"):
                return mnt
    return None


def _mount_of_vault(source: str) -> str | None:
    from memexfs.vault import Vault

    info = Vault(Path(source).resolve()).read_json("mount.json")
    mnt = info.get("mountpoint")
    return str(mnt) if mnt and mnt in memex_mounts() else None


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
def offline(source: str, qdrant_url: str | None = None) -> Iterator[tuple[Any, Any]]:
    """A vault that no daemon serves, locked for us: (vault, store), closed on exit."""
    from memexfs.store import open_store
    from memexfs.vault import Vault, VaultLock

    if not os.path.isdir(source):
        raise CliError(f"{source}: not a directory")
    vault = Vault.open(source)
    lock = VaultLock(vault)
    try:
        lock.acquire()
    except VaultLocked as exc:
        raise CliError(f"{source}: {exc}", EXIT_BUSY) from None
    try:
        store = open_store(vault, qdrant_url)
        try:
            yield vault, store
        finally:
            store.close()
    finally:
        lock.release()


def _results_via_mount(mnt: str, *parts: str) -> tuple[list[dict[str, Any]], str | None]:
    """Ask the running daemon: read the ``.results`` file of a virtual folder."""
    try:
        return _parse_results(Path(mnt, *parts, ".results").read_text())
    except OSError as exc:
        raise CliError(f"search failed: {exc.strerror}") from None


def _hit_dicts(result: Any) -> list[dict[str, Any]]:
    return [{"rank": h.rank, "score": h.score, "path": h.path, "snippet": h.snippet}
            for h in result.hits]


def _print_hits(hits: list[dict[str, Any]], reason: str | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"results": hits, "reason": reason}, indent=2))
        return
    if not hits:
        print(f"no results{f': {reason}' if reason else ''}", file=sys.stderr)
    for h in hits:
        print(f"{h['rank']:>3}  {h['score']:.3f}  {h['path']}")


def _parse_results(text: str) -> tuple[list[dict[str, Any]], str | None]:
    hits, reason = [], None
    for line in text.splitlines():
        if line.startswith("# rank"):
            continue
        if line.startswith("# "):
            reason = line[2:]
            continue
        rank, score, path, snippet = (line.split("\t", 3) + [""])[:4]
        hits.append({"rank": int(rank), "score": float(score), "path": path,
                     "snippet": snippet})
    return hits, reason


# ------------------------------------------------------------------------------ commands
def cmd_mount(a: argparse.Namespace) -> int:
    from mount.daemon import MountOptions, run_mount

    if _mount_of(a.mountpoint) == os.path.realpath(a.mountpoint):
        raise CliError(f"{a.mountpoint} is already a MemexFS mount", EXIT_BUSY)
    opts = MountOptions(a.source, a.mountpoint, foreground=a.foreground,
                        allow_other=a.allow_other, debug=a.fuse_debug or a.debug,
                        today=a.today, encoder=a.encoder, watch=not a.no_watch,
                        qdrant_url=a.qdrant_url)
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
        if not os.path.isdir(os.path.join(a.path, CTL)):
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
    from memexfs import schema

    with offline(source) as (_vault, store):
        counts = {s: 0 for s in schema.STATES}
        errors = {}
        for rec in store.iter_files():
            counts[rec.status] = counts.get(rec.status, 0) + 1
            if rec.error:
                errors[rec.path] = rec.error
        return {"state": "offline", "files": sum(counts.values()),
                "indexed": counts[schema.INDEXED], "failed": counts[schema.FAILED],
                "metadata_only": counts[schema.METADATA_ONLY], "queued": counts[schema.PENDING],
                "chunks": store.count_chunks(), "errors": errors}


def cmd_index(a: argparse.Namespace) -> int:
    mnt = _mount_of_vault(a.source)
    if mnt is not None:
        print(f"{a.source} is mounted on {mnt}; its daemon indexes it. Waiting for idle.",
              file=sys.stderr)
        return cmd_status(argparse.Namespace(path=mnt, wait=True, timeout=86400, json=False))
    import trio

    from memexfs.indexer import Indexer
    from memexfs.pipeline import pipeline_factory

    with offline(a.source, a.qdrant_url) as (vault, store):
        # The daemon's own indexer, without a mount or watcher: one code path for both.
        indexer = Indexer(vault, store, pipeline_factory(vault, store, a.encoder), watch=False)

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(indexer.run)
                while not indexer.idle and indexer.stats.state != "error":
                    _progress(indexer.stats)
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()

        try:
            trio.run(run)
        finally:
            if indexer.pipeline is not None:
                indexer.pipeline.extractor.close()
        st = indexer.stats
        _progress(st, final=True)
        print(file=sys.stderr)
        if st.state == "error":
            raise CliError(st.last_error or "indexing failed")
        print(f"{st.done_since_start} files processed: {st.indexed} indexed, "
              f"{st.metadata_only} metadata-only, {st.failed} failed ({st.chunks} chunks)")
        return EXIT_OK


def _progress(st: Any, final: bool = False) -> None:
    if not (final or sys.stderr.isatty()):
        return
    done, total = st.done_since_start, st.done_since_start + st.queued
    width = 30
    filled = int(width * done / total) if total else width
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files, "
          f"{st.files_per_s:.1f}/s, {st.failed} failed ", end="", file=sys.stderr)


def cmd_search(a: argparse.Namespace) -> int:
    text = " ".join(a.query)
    if a.k:
        text += f" k:{a.k}"
    mnt = _mount_of_vault(a.source) if os.path.isdir(a.source) else None
    if mnt is not None:
        if a.today:
            raise CliError("--today is fixed by the mount (memexfs mount --today) while mounted",
                           EXIT_USAGE)
        hits, reason = _results_via_mount(mnt, "q", text)
        _print_hits(hits, reason, a.json)
        return EXIT_OK
    from embed import load_encoder
    from query.engine import SearchEngine
    from query.parse import parse

    with offline(a.source) as (_vault, store):
        engine = SearchEngine(store, load_encoder(a.encoder))
        result = engine.search(parse([text], a.today or date.today(), engine.known_vendors()))
        _print_hits(_hit_dicts(result), result.reason, a.json)
        return EXIT_OK


def cmd_related(a: argparse.Namespace) -> int:
    rel = a.path
    if os.path.isabs(rel):
        rel = os.path.relpath(rel, os.path.realpath(a.source))
    mnt = _mount_of_vault(a.source)
    if mnt is not None:
        hits, reason = _results_via_mount(mnt, "related", rel)
        _print_hits(hits[: a.k], reason, a.json)
        return EXIT_OK
    from embed import load_encoder
    from query.engine import SearchEngine

    with offline(a.source) as (_vault, store):
        result = SearchEngine(store, load_encoder(a.encoder)).related(rel, k=a.k)
        _print_hits(_hit_dicts(result), result.reason, a.json)
        return EXIT_OK


def cmd_check(a: argparse.Namespace) -> int:
    from memexfs.check import check

    with offline(a.source) as (vault, store):
        problems = check(vault, store)
    if a.json:
        print(json.dumps({"problems": problems}, indent=2))
    else:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_ERROR


COMMANDS = {"mount": cmd_mount, "umount": cmd_umount, "status": cmd_status, "index": cmd_index,
            "search": cmd_search, "related": cmd_related, "check": cmd_check}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING,
                        format="memexfs: %(message)s")
    try:
        return COMMANDS[a.cmd](a)
    except CliError as exc:
        print(f"memexfs: {exc}", file=sys.stderr)
        return exc.code
    except (MemexError, OSError) as exc:
        if a.debug:
            raise
        print(f"memexfs: {exc}", file=sys.stderr)
        return EXIT_BUSY if isinstance(exc, VaultLocked) else EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
