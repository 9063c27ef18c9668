"""Waiting on a condition with a deadline: the one polling loop of the tests.

Across processes (a daemon, a mount, a child) there is no event to wait on, so tests poll a
condition; each wait says what it waited for when it gives up, and none sleeps as a substitute
for a condition. Inside one trio run, ``until`` does the same between checkpoints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")

INTERVAL_S = 0.05


def wait_until(cond: Callable[[], T | None], timeout: float, what: str | Callable[[], str],
               interval: float = INTERVAL_S) -> T:
    """Poll ``cond`` until it returns something true, and return that; ``TimeoutError`` naming
    ``what`` (called then, when it is a function: the state worth showing) after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            said = what() if callable(what) else f"{what} (last: {got!r})"
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {said}")
        time.sleep(interval)


def eventually(cond: Callable[[], object], timeout: float = 10.0,
               interval: float = INTERVAL_S) -> bool:
    """Whether ``cond`` became true within ``timeout``: for tests that assert the answer."""
    try:
        wait_until(cond, timeout, "a condition", interval)
    except TimeoutError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie's mount work is over)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_pid_gone(pid: int, timeout: float) -> None:
    wait_until(lambda: not pid_alive(pid), timeout, f"pid {pid} to exit", interval=0.02)


async def until(cond: Callable[[], object], seconds: float = 20.0, what: str = "") -> None:
    """Trio: poll ``cond`` (store or status state that has no event to wait on)."""
    try:
        with trio.fail_after(seconds):
            while not cond():  # noqa: ASYNC110
                await trio.sleep(INTERVAL_S)
    except trio.TooSlowError:
        raise TimeoutError(f"timed out after {seconds:g}s waiting for {what or cond}") from None
