"""Disk used by a directory tree, as `du` counts it (allocated blocks, each inode once,
symlinks not followed): the per-app figure of `tova deploy --list`."""

from __future__ import annotations

import os
from pathlib import Path


def dir_bytes(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path, onerror=lambda _err: None):
        for name in (*dirs, *files):
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue  # removed meanwhile (a deploy cleaning up)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total
