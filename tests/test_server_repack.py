"""repo.git is packed after a deploy once enough loose objects or packs have gathered."""

from __future__ import annotations

import shutil
import subprocess

from dulwich.objects import Blob
from dulwich.repo import Repo

from tova.server.repack import LOOSE_LIMIT, PACK_LIMIT, ObjectCounts, count_objects, pack_if_needed


def _blobs(repo: Repo, n: int, tag: str) -> list[bytes]:
    ids = []
    for i in range(n):
        blob = Blob.from_string(f"{tag} {i}\n".encode())
        repo.object_store.add_object(blob)
        ids.append(blob.id)
    return ids


def test_threshold():
    assert not ObjectCounts(LOOSE_LIMIT - 1, PACK_LIMIT - 1).needs_packing()
    assert ObjectCounts(LOOSE_LIMIT, 0).needs_packing()
    assert ObjectCounts(0, PACK_LIMIT).needs_packing()


def test_loose_objects_are_packed_once_enough_gathered(tmp_path):
    git_dir = tmp_path / "repo.git"
    repo = Repo.init_bare(str(git_dir), mkdir=True)
    few = _blobs(repo, LOOSE_LIMIT - 1, "a")
    assert count_objects(git_dir) == ObjectCounts(LOOSE_LIMIT - 1, 0)
    assert pack_if_needed(git_dir) is None  # not yet
    ids = few + _blobs(repo, 1, "b")
    assert pack_if_needed(git_dir) == ObjectCounts(LOOSE_LIMIT, 0)
    assert count_objects(git_dir) == ObjectCounts(0, 1)
    fresh = Repo(str(git_dir))
    assert all(fresh[i].as_raw_string() for i in ids)  # every object still there
    if shutil.which("git"):
        res = subprocess.run(["git", "--git-dir", str(git_dir), "count-objects", "-v"], capture_output=True, text=True)
        assert "count: 0" in res.stdout and "packs: 1" in res.stdout


def test_many_packs_become_one(tmp_path):
    git_dir = tmp_path / "repo.git"
    repo = Repo.init_bare(str(git_dir), mkdir=True)
    ids = []
    for p in range(PACK_LIMIT):
        ids += _blobs(repo, 3, f"pack{p}")
        repo.object_store.pack_loose_objects()
    assert count_objects(git_dir) == ObjectCounts(0, PACK_LIMIT)
    assert pack_if_needed(git_dir) is not None
    assert count_objects(git_dir) == ObjectCounts(0, 1)
    assert all(Repo(str(git_dir))[i] for i in ids)


def test_missing_repository_is_nothing_to_do(tmp_path):
    assert count_objects(tmp_path / "nope.git") == ObjectCounts(0, 0)
    assert pack_if_needed(tmp_path / "nope.git") is None
