"""Keeping an app's repo.git small: git's receive-pack leaves a small push as loose
objects (about 30 kB a push) and its own `gc --auto` waits for thousands of them. After
a deploy, when enough loose objects or packs have gathered, everything is packed into
one pack through dulwich (the repository of an app's source is small)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dulwich.repo import Repo

LOOSE_LIMIT = 100  # about ten pushes of a few files each
PACK_LIMIT = 10  # pushes of 100+ objects arrive as packs of their own


@dataclass(frozen=True)
class ObjectCounts:
    loose: int
    packs: int

    def needs_packing(self) -> bool:
        return self.loose >= LOOSE_LIMIT or self.packs >= PACK_LIMIT


def count_objects(git_dir: Path) -> ObjectCounts:
    """Loose objects (objects/xx/<38 hex>) and packs, counted from the directory alone."""
    objects = git_dir / "objects"
    loose = 0
    try:
        entries = list(os.scandir(objects))
    except OSError:
        return ObjectCounts(0, 0)
    for entry in entries:
        if len(entry.name) == 2 and entry.is_dir():
            loose += sum(1 for f in os.scandir(entry.path) if len(f.name) == 38)
    try:
        packs = sum(1 for f in os.scandir(objects / "pack") if f.name.endswith(".pack"))
    except OSError:
        packs = 0
    return ObjectCounts(loose, packs)


def pack_if_needed(git_dir: Path) -> ObjectCounts | None:
    """Pack the repository when it needs it; the counts before packing, or None."""
    counts = count_objects(git_dir)
    if not counts.needs_packing():
        return None
    with Repo(str(git_dir)) as repo:
        repo.object_store.repack()
    return counts
