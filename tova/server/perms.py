"""Modes of the toolkit's own files, set on every deploy (never left to a umask): any local
user, another app's included, may pass through the toolkit's directories (the proxy serves
each release's static/, the app runs its current/) but list or read nothing of root's.

What stays readable: the toolkit, the compiler and the proxy's site files (no secrets).
What an app's own user reads comes from group ownership (release_tree.seal, data/)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tova.layout import AppLayout, Layout

PASS_THROUGH = 0o711
# Entries of an app's directory that keep their own modes: the app's data, its releases
# (sealed one by one) and the `current` link.
_OWN_MODES = {"data", "current"}


def _set(path: Path, mode: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
        return
    os.chmod(path, mode)


def _private(path: Path) -> None:
    """Only the owner (root) keeps any access."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISLNK(st.st_mode):
        _set(path, stat.S_IMODE(st.st_mode) & 0o700)


def harden(layout: Layout, app: AppLayout) -> None:
    _set(layout.root, PASS_THROUGH)
    _set(layout.apps_dir, PASS_THROUGH)
    for path in (layout.registry, layout.registry_lock, layout.root / "config.toml", layout.archive_dir):
        _private(path)
    _set(app.dir, PASS_THROUGH)
    _set(app.releases, PASS_THROUGH)
    _set(app.deps, PASS_THROUGH)  # each dependency set is sealed like a release
    try:
        entries = list(os.scandir(app.dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name in _OWN_MODES or Path(entry.path) in (app.releases, app.deps):
            continue
        _private(Path(entry.path))  # repo.git, build/, history, locks, env files, provision.sh
