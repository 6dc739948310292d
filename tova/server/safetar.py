"""Extracting a tar of untrusted content: regular files, directories and symbolic links
that stay inside the destination; nothing else. tarfile's own extraction filters arrived
in Python 3.11.4 and Debian 12 ships 3.11.2."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path


def extract_safely(tar: tarfile.TarFile, dest: Path, *, links_out: bool = False) -> None:
    """Members in archive order (works on a stream); TarError for a member that would land
    outside dest, or (unless links_out: a caller that never follows links, and reports
    them itself) a symbolic link pointing outside. Hard links, devices and fifos are left
    out."""
    for member in tar:
        rel = os.path.normpath(member.name)
        if rel == ".":
            continue
        if rel.startswith(("/", "..")):
            raise tarfile.TarError(f"{member.name!r} is outside the archive")
        path = dest / rel
        _no_link_on_the_way(dest, rel, member.name)
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            path.parent.mkdir(parents=True, exist_ok=True)
            _no_link_on_the_way(dest, rel, member.name)
            source = tar.extractfile(member)
            assert source is not None
            # A new file, never through a link (a crafted tree can name a path twice).
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as fh:
                shutil.copyfileobj(source, fh)
                os.fchmod(fh.fileno(), 0o755 if member.mode & 0o111 else 0o644)
        elif member.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(rel), member.linkname))
            if not links_out and (os.path.isabs(member.linkname) or target.startswith("..")):
                raise tarfile.TarError(f"{member.name!r} links outside the archive")
            path.parent.mkdir(parents=True, exist_ok=True)
            _no_link_on_the_way(dest, rel, member.name)
            os.symlink(member.linkname, path)


def _no_link_on_the_way(dest: Path, rel: str, name: str) -> None:
    """No directory between dest and the member is a symlink (an earlier member of a
    hostile archive), so nothing is created through one."""
    parts = Path(rel).parts[:-1]
    for i in range(1, len(parts) + 1):
        if (dest.joinpath(*parts[:i])).is_symlink():
            raise tarfile.TarError(f"{name!r} is inside a symbolic link")
