"""The manifest the pre-receive check read from a pushed commit, kept for the deploy the
post-receive hook runs next, so that it need not import the reader and read the project
again (~30 ms of each push). Root's only, in the app's directory; one file per commit and
environment, taken once; anything unreadable or of another toolkit version is ignored and
the deploy reads the project itself."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import tova
from tova.layout import AppLayout
from tova.manifest import Manifest
from tova.naming import is_env_name

DIR_NAME = "prechecked"
MAX_AGE = 600.0  # seconds: an entry whose push never deployed (its ref update failed)
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def _path(app: AppLayout, commit: str, env: str) -> Path | None:
    if not _COMMIT_RE.fullmatch(commit) or not is_env_name(env):
        return None
    return app.dir / DIR_NAME / f"{commit}.{env}.json"


def keep(app: AppLayout, commit: str, env: str, manifest: Manifest) -> None:
    path = _path(app, commit, env)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        _forget_old(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"toolkit": tova.__version__, "manifest": manifest.to_dict()}, f)
        os.replace(tmp, path)  # no fsync: after a crash the deploy reads the project itself
    except OSError:
        pass


def take(app: AppLayout, commit: str, env: str) -> Manifest | None:
    """The kept manifest of `commit` for `env` (removed as it is read), or None."""
    path = _path(app, commit, env)
    if path is None:
        return None
    try:
        text = path.read_text()
        path.unlink()
        data = json.loads(text)
        if data.get("toolkit") != tova.__version__:
            return None
        return Manifest.from_dict(data["manifest"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _forget_old(directory: Path) -> None:
    now = time.time()
    for entry in os.scandir(directory):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > MAX_AGE:
                os.unlink(entry.path)
        except OSError:
            pass
