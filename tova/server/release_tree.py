"""Root takes a finished build: the staged release (built by the unprivileged build user)
becomes root's, with explicit modes, and nothing in it may lead outside it.

Run only after the build's processes are gone (the sandbox unit ended), so nothing changes
the tree while it is walked. Every entry is opened relative to its directory's descriptor
without following symlinks, and owner and mode are set on that descriptor.

Modes (never the umask's): the app's group may read its code (files 0640, executables and
directories 0750); `static/` is served to anyone by the proxy, so it is world-readable
(0644 / 0755); the release directory itself is 0751 (others may only pass through to
static/)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tova.errors import DeployError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
PUBLIC_DIRS = ("static",)  # assets.STATIC: what the proxy serves
_HINT = "a symlink in a project or its build must point inside it; fix or remove it"


def seal(root: Path, gid: int, public: tuple[str, ...] = PUBLIC_DIRS) -> int:
    """Own and mode every entry of `root` (see the module doc); refuse symlinks leading
    out of it, hard-linked files and anything but files, directories and symlinks.
    Returns the number of entries."""
    count = 0
    top = os.open(root, _O_DIR)
    os.fchown(top, 0, gid)
    os.fchmod(top, 0o751)
    stack: list[tuple[int, str, bool]] = [(top, "", False)]
    try:
        while stack:
            dfd, rel, world = stack.pop()
            try:
                names = os.listdir(dfd)
                for name in names:
                    path = f"{rel}{name}"
                    count += 1
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    pub = world or (rel == "" and name in public)
                    if stat.S_ISLNK(st.st_mode):
                        check_link(root, path)
                        os.chown(name, 0, gid, dir_fd=dfd, follow_symlinks=False)
                    elif stat.S_ISDIR(st.st_mode):
                        sub = os.open(name, _O_DIR, dir_fd=dfd)
                        os.fchown(sub, 0, gid)
                        os.fchmod(sub, 0o755 if pub else 0o750)
                        stack.append((sub, path + "/", pub))
                    elif stat.S_ISREG(st.st_mode):
                        if st.st_nlink > 1:
                            raise DeployError(f"the build output has a hard-linked file: {path}",
                                              hint="a release holds plain files; copy it instead of linking")
                        fd = os.open(name, _O_ENTRY, dir_fd=dfd)
                        try:
                            execu = bool(st.st_mode & 0o111)
                            os.fchown(fd, 0, gid)
                            os.fchmod(fd, (0o755 if execu else 0o644) if pub else (0o750 if execu else 0o640))
                        finally:
                            os.close(fd)
                    else:
                        raise DeployError(f"the build output has a special file: {path}",
                                          hint="a release holds files, directories and symlinks only")
            finally:
                os.close(dfd)
    except BaseException:
        for dfd, _, _ in stack:
            os.close(dfd)
        raise
    return count


def check_link(root: Path, rel: str, where: str = "the release") -> None:
    """The link, resolved through every link on its way, ends inside `root`."""
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, rel))
    if target != base and not target.startswith(base + os.sep):
        raise DeployError(f"symlink {rel} -> {os.readlink(os.path.join(base, rel))} points outside {where}",
                          hint=_HINT)
