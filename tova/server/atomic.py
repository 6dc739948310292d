"""The one way to write state: temp file + fsync + rename (+ directory fsync), and the
one way to move a symlink. A crash leaves either the old or the new content, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tova.errors import TovaError


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644, durable: bool = True) -> None:
    """`durable=False` for what only informs (a log, who holds a lock): still never half
    written, but without the two fsyncs (milliseconds each on a busy disk) that make it
    survive a power cut."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; set the final mode before any content lands.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def flip_symlink(link: Path, target: str | Path) -> None:
    """Point `link` at `target` (stored as given, usually relative) in one rename."""
    link = Path(link)
    if link.is_dir() and not link.is_symlink():
        # rename() cannot put a link over a directory: say what is wrong, change nothing.
        raise TovaError(f"{link} is a directory, not the link to a release",
                        hint=f"move it away (mv {link} {link}.moved), then deploy or roll back again")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(str(target), tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)
