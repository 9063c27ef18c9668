"""The user's defaults: ``$XDG_CONFIG_HOME/memexfs/config.toml`` (``MEMEXFS_CONFIG`` or
``--config FILE`` name another file). The command line wins over the file, the file over the
built-in defaults. A key we do not know or a value of the wrong type is an error naming the
file, the key and the type expected: a typo must not silently keep a default.

    encoder = "ternary"                    # every command's encoder
    excludes = ["*.iso", "Archive/"]       # gitignore patterns, after .memexignore's defaults
    state_root = "~/.local/state/memexfs"  # each vault's state in state_root/<escaped path>

    [mount]                                # defaults for `memexfs mount` and its -o options
    allow_other = true
    no_watch = false
    ro = false
    today = 2024-05-01
    encoder = "minilm"
    qdrant_url = "http://localhost:6333"
    log_level = "info"

    [search]
    k = 10
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from memexfs.errors import MemexError

ENV = "MEMEXFS_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(MemexError):
    """The config file cannot be used (a usage error: the CLI exits 2)."""


@dataclass(frozen=True)
class MountDefaults:
    allow_other: bool = False
    ro: bool = False
    no_watch: bool = False
    today: date | None = None
    encoder: str | None = None
    qdrant_url: str | None = None
    log_level: str | None = None


@dataclass(frozen=True)
class SearchDefaults:
    k: int | None = None


@dataclass(frozen=True)
class Config:
    """The defaults in force. ``state_dir`` is never read from the file: it is ``--state-dir``,
    the command line's say on where this command's vault keeps its state."""

    source: Path | None = None  # the file these came from (None: built-in defaults)
    encoder: str | None = None
    excludes: tuple[str, ...] = ()
    state_root: Path | None = None
    mount: MountDefaults = field(default_factory=MountDefaults)
    search: SearchDefaults = field(default_factory=SearchDefaults)
    state_dir: Path | None = None


# ------------------------------------------------------------------------------ value checks
# key -> (what the error calls the type, check-and-convert; None when the value does not fit)
Check = tuple[str, Callable[[Any], Any]]


def _path(value: Any) -> Path | None:
    path = Path(value).expanduser() if isinstance(value, str) else None
    return path if path is not None and path.is_absolute() else None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value)
    return None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_BOOL: Check = ("a boolean (true or false)", lambda v: v if isinstance(v, bool) else None)
_STR: Check = ("a non-empty string", _string)
_TOP: dict[str, Check] = {
    "encoder": _STR,
    "excludes": ("a list of strings (gitignore patterns)",
                 lambda v: tuple(v) if isinstance(v, list)
                 and all(isinstance(p, str) for p in v) else None),
    "state_root": ("an absolute path (a string; ~ allowed)", _path),
}
_MOUNT: dict[str, Check] = {
    "allow_other": _BOOL, "ro": _BOOL, "no_watch": _BOOL,
    "today": ("a date (YYYY-MM-DD)", _date),
    "encoder": _STR, "qdrant_url": _STR,
    "log_level": (f"one of {', '.join(LOG_LEVELS)}",
                  lambda v: v if v in LOG_LEVELS else None),
}
_SEARCH: dict[str, Check] = {
    "k": ("a whole number from 1 up",
          lambda v: v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else None),
}
_TABLES = {"mount": _MOUNT, "search": _SEARCH}


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), "date" if isinstance(value, date) else "value")


def _checked(source: Path, table: dict[str, Any], checks: dict[str, Check],
             prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in checks:
            known = ", ".join(sorted(checks))
            raise ConfigError(f"{source}: unknown key {name!r} (known: {known})")
        expected, convert = checks[key]
        got = convert(value)
        if got is None:
            raise ConfigError(f"{source}: {name}: expected {expected}, "
                              f"got {_type_name(value)} {value!r}")
        out[key] = got
    return out


# ------------------------------------------------------------------------------ loading
def default_path() -> Path:
    """``$MEMEXFS_CONFIG``, else ``$XDG_CONFIG_HOME/memexfs/config.toml`` (~/.config/...)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base, "memexfs", "config.toml")


def load(file: str | os.PathLike[str] | None = None) -> Config:
    """The config in ``file`` (default: :func:`default_path`). A file named by the user
    (``--config``, ``$MEMEXFS_CONFIG``) must exist; the XDG default may be absent."""
    named = file is not None or bool(os.environ.get(ENV))
    source = Path(file).expanduser() if file is not None else default_path()
    try:
        with source.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{source}: no such config file") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    tables = {name: raw.pop(name) for name in list(raw) if name in _TABLES}
    top = _checked(source, raw, _TOP)
    for name, value in tables.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a table ([{name}]), "
                              f"got {_type_name(value)}")
    mount = MountDefaults(**_checked(source, tables.get("mount", {}), _MOUNT, "mount."))
    search = SearchDefaults(**_checked(source, tables.get("search", {}), _SEARCH, "search."))
    return Config(source=source, mount=mount, search=search, **top)


# ------------------------------------------------------------------------------ in force
_active: Config | None = None


def current() -> Config:
    """The config this process runs with: the one a command activated, else the default
    file's (read on each call: a long-lived program sees edits)."""
    return _active if _active is not None else load()


@contextlib.contextmanager
def activate(cfg: Config) -> Iterator[Config]:
    """Make ``cfg`` what :func:`current` returns while a command runs (a daemon forked
    meanwhile keeps it); the previous one is back afterwards."""
    global _active
    before, _active = _active, cfg
    try:
        yield cfg
    finally:
        _active = before
