"""Exclusive advisory locks on a file with flock(2): the kernel drops one when its holder
dies, even by SIGKILL, so nothing stale can block the next holder. The standard library's
fcntl rather than a lock package: the hooks import this on every push, and the package
cost them tens of milliseconds of imports."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

POLL = 0.05  # seconds between tries while another process holds the lock


class Busy(Exception):
    """Another process held the lock for the whole wait."""


def acquire(path: Path, wait: float, on_busy: Callable[[], None] | None = None) -> int:
    """Lock `path` (created if missing) and return its open descriptor for release():
    at once, or within `wait` seconds; on_busy (if given) runs once before the wait.
    Raises Busy when the wait ends first."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        end: float | None = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if end is None:
                    if on_busy is not None:
                        on_busy()
                    end = time.monotonic() + wait
                if time.monotonic() >= end:
                    raise Busy(str(path)) from None
                time.sleep(min(POLL, max(0.0, end - time.monotonic())))
    except BaseException:
        os.close(fd)
        raise


def release(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
