"""Run a function as another user in a forked child, and get back its result or errno."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

from tests.mount.posix import outcome


def as_user(uid: int, gid: int, fn: Callable[..., Any], *args: Any,
            groups: tuple[int, ...] = ()) -> tuple[str, Any]:
    """``outcome(fn, *args)`` computed by a child that dropped to ``uid``/``gid`` (and only the
    supplementary ``groups``): the FUSE request then carries that caller's credentials."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            os.umask(0o022)
            res = outcome(fn, *args)
            os.write(w, pickle.dumps(res))
        except BaseException as exc:  # reported to the parent, never raised
            os.write(w, pickle.dumps(("crash", repr(exc))))
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    res = pickle.loads(data)
    assert res[0] != "crash", res
    assert os.waitstatus_to_exitcode(status) == 0
    return tuple(res)  # type: ignore[return-value]
