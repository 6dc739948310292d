"""dulwich checkout: exact bytes, modes and symlinks, no git CLI on the server side."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from tova.errors import DeployError
from tova.server.checkout import changed_files, checkout, resolve_commit


def _git(cwd, *args):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_checkout_matches_git(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "a.txt").write_bytes(b"hello\r\nbinary\x00\xff")
    (work / "dir" / "deep").mkdir(parents=True)
    (work / "dir" / "deep" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(work / "dir" / "deep" / "run.sh", 0o755)
    (work / "name with space ü.txt").write_text("x")
    os.symlink("dir/deep/run.sh", work / "link")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "one")
    repo = Repo(str(work))
    commit = resolve_commit(repo, "main")
    dest = tmp_path / "out"
    assert checkout(repo, commit, dest) == 4
    assert (dest / "a.txt").read_bytes() == b"hello\r\nbinary\x00\xff"
    assert stat.S_IMODE((dest / "dir/deep/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "a.txt").stat().st_mode) == 0o644
    assert os.readlink(dest / "link") == "dir/deep/run.sh"
    assert (dest / "name with space ü.txt").read_text() == "x"
    # compare with git's own archive of the same commit
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(f"git archive HEAD | tar -x -C {ref}", shell=True, cwd=work, check=True)
    assert _tree(dest) == _tree(ref)
    # changed files between commits
    (work / "a.txt").write_text("changed")
    (work / "new.txt").write_text("n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "two")
    repo = Repo(str(work))
    assert changed_files(repo, commit.id, resolve_commit(repo, "main").id) == 2
    assert changed_files(repo, None, commit.id) is None


def _tree(root: Path) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = (stat.S_IMODE(p.stat().st_mode) & 0o111 != 0, p.read_bytes())
    return out


@pytest.mark.parametrize("bad", [b"..", b".git", b"a/b"])
def test_hostile_names_are_refused(tmp_path, bad):
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    blob = Blob.from_string(b"evil")
    tree = Tree()
    tree.add(bad, 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"t <t@e>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"x"
    for obj in (blob, tree, commit):
        repo.object_store.add_object(obj)
    with pytest.raises(DeployError):
        checkout(repo, commit, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_unknown_rev(tmp_path):
    repo = Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)
    with pytest.raises(DeployError):
        resolve_commit(repo, "deadbeef" * 5)
