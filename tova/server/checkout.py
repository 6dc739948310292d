"""Materialize a commit's tree into a fresh directory with dulwich (no git CLI):
exact bytes, executable bits (0755 / 0644) and symlinks. Names from the tree are checked so
a hostile commit cannot write outside the target directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dulwich.diff_tree import tree_changes
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

from tova.errors import DeployError

_BAD_NAMES = {b"", b".", b"..", b".git"}


def resolve_commit(repo: Repo, rev: str | bytes) -> Commit:
    key = rev.encode() if isinstance(rev, str) else rev
    for candidate in (key, b"refs/heads/" + key, b"refs/tags/" + key):
        try:
            obj = repo[candidate]
        except (KeyError, ValueError):
            continue
        while not isinstance(obj, Commit) and hasattr(obj, "object"):
            obj = repo[obj.object[1]]  # peel annotated tags
        if isinstance(obj, Commit):
            return obj
    raise DeployError(f"commit {rev!r} not found in the repository",
                      hint="push it first: git push <remote> <branch>")


def checkout(repo: Repo, commit: Commit, dest: Path) -> int:
    """Write the commit's tree into `dest` (must not exist). Returns the file count.

    Objects are fetched in batches (one per tree level, then all blobs at once) through
    iterobjects_subset: a pack is then read in offset order with its deltas resolved once,
    instead of one random lookup per file."""
    dest = Path(dest)
    os.mkdir(dest, 0o755)
    store = repo.object_store
    blobs: dict[bytes, list[tuple[str, int]]] = {}
    level: dict[bytes, list[str]] = {commit.tree: [str(dest)]}
    while level:
        next_level: dict[bytes, list[str]] = {}
        for tree in store.iterobjects_subset(list(level)):
            assert isinstance(tree, Tree)
            for base in level[tree.id]:
                for name, mode, sha in tree.iteritems():
                    if name in _BAD_NAMES or b"/" in name or b"\x00" in name:
                        raise DeployError(f"refusing to check out unsafe path name {name!r}",
                                          hint="rename that file in the repository")
                    path = base + "/" + os.fsdecode(name)
                    if stat.S_ISDIR(mode):
                        os.mkdir(path, 0o755)
                        next_level.setdefault(sha, []).append(path)
                    elif stat.S_ISLNK(mode) or stat.S_ISREG(mode):
                        blobs.setdefault(sha, []).append((path, mode))
                    else:
                        os.mkdir(path, 0o755)  # a gitlink (submodule): empty, as git does
        level = next_level
    count = 0
    try:
        found = list(store.iterobjects_subset(list(blobs)))
    except KeyError as exc:
        raise DeployError(f"the repository is missing object {exc}", hint="push again")
    for blob in found:
        data = blob.as_raw_string()
        for path, mode in blobs[blob.id]:
            if stat.S_ISLNK(mode):
                os.symlink(os.fsdecode(data), path)
            else:
                perm = 0o755 if mode & 0o111 else 0o644
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perm)
                try:
                    _write_all(fd, data)
                    if perm == 0o755:
                        os.fchmod(fd, perm)  # the umask may have masked bits off
                finally:
                    os.close(fd)
            count += 1
    return count


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def changed_files(repo: Repo, old: bytes | None, new: bytes) -> int | None:
    """How many paths differ between two commits; None when there is no old commit."""
    if old is None:
        return None
    try:
        old_tree = repo[old].tree
    except KeyError:
        return None
    return sum(1 for _ in tree_changes(repo.object_store, old_tree, repo[new].tree))
