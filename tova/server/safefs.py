"""Root's writes inside a directory the app can write (data/): never by path.

The app may plant symlinks there at any time, so every step opens the next directory
relative to the previous one's descriptor with O_NOFOLLOW, creates with O_EXCL, sets
owner and mode on the descriptor, and renames within one directory descriptor. A planted
symlink makes the write fail instead of redirecting it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tova.errors import DeployError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(base: Path, rel: str, why: str) -> DeployError:
    return DeployError(f"cannot write {base / rel}: {why}",
                       hint="the app's data directory holds a symlink or a non-directory there; "
                            "remove it and deploy again")


def open_subdir(base: Path, parts: list[str], owner: tuple[int, int] | None, mode: int = 0o700) -> int:
    """A descriptor for base/parts..., creating missing directories (owned by `owner`)."""
    fd = os.open(base, _O_DIR)
    try:
        for i, name in enumerate(parts):
            if name in ("", ".", ".."):
                raise _refuse(base, "/".join(parts), "bad path component")
            try:
                os.mkdir(name, mode, dir_fd=fd)
                created = True
            except FileExistsError:
                created = False
            try:
                sub = os.open(name, _O_DIR, dir_fd=fd)
            except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file
                raise _refuse(base, "/".join(parts[:i + 1]), exc.strerror or "not a directory") from None
            if created:
                if owner is not None:
                    os.fchown(sub, *owner)
                os.fchmod(sub, mode)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_in(base: Path, rel: str, data: bytes, owner: tuple[int, int] | None, mode: int = 0o600) -> None:
    """Atomically write base/rel (temp file + rename in the same directory descriptor)."""
    parts = rel.split("/")
    dfd = open_subdir(base, parts[:-1], owner)
    name = parts[-1]
    if name in ("", ".", ".."):
        os.close(dfd)
        raise _refuse(base, rel, "bad file name")
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, _O_NEW, 0o600, dir_fd=dfd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)  # replaces a symlink, never follows it
        except OSError as exc:
            os.unlink(tmp, dir_fd=dfd)
            raise _refuse(base, rel, exc.strerror or "cannot replace it") from None
        os.fsync(dfd)
    finally:
        os.close(dfd)
