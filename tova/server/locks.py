"""The per-app deploy lock around the whole pipeline. flock-based (tova.server.flock), so the kernel
drops it when its holder dies, even by SIGKILL: nothing stale can block the next deploy."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tova.errors import LockedError
from tova.layout import AppLayout
from tova.server import flock
from tova.server.atomic import write_atomic


def _holder(app: AppLayout) -> str:
    try:
        info = json.loads(app.lock_info.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["time"]))
        return f"pid {info['pid']} since {since} ({info.get('what', 'deploy')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def deploy_lock(app: AppLayout, wait: float, what: str = "deploy",
                notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """notify (if given) hears one line when the lock is busy, before the wait."""
    app.dir.mkdir(parents=True, exist_ok=True)

    def busy() -> None:
        if notify is not None:
            notify(f"Waiting for {_holder(app)} to finish (up to {wait:.0f}s)...")

    try:
        fd = flock.acquire(app.deploy_lock, wait, on_busy=busy)
    except flock.Busy:
        raise LockedError(
            f"{app.name} is locked by {_holder(app)}",
            hint="wait for that deploy to finish, then push again",
        ) from None
    try:
        # Who holds it, for the message above; informational only (the flock decides), so
        # a full disk does not stop the deploy here, before it can say why and record it.
        try:
            write_atomic(app.lock_info, json.dumps({"pid": os.getpid(), "time": time.time(), "what": what}),
                         durable=False)
        except OSError:
            pass
        yield
    finally:
        try:
            app.lock_info.unlink()
        except FileNotFoundError:
            pass
        flock.release(fd)
