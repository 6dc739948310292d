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


# --- building repositories object by object --------------------------------------------

def _bare(tmp_path) -> Repo:
    return Repo.init_bare(str(tmp_path / "r.git"), mkdir=True)


def _commit_tree(repo: Repo, tree_id: bytes) -> Commit:
    commit = Commit()
    commit.tree = tree_id
    commit.author = commit.committer = b"t <t@e>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"x"
    repo.object_store.add_object(commit)
    return commit


def _write_loose(repo: Repo, type_name: bytes, body: bytes, name: bytes | None = None) -> bytes:
    """A loose object written by hand: allows trees dulwich would not build (duplicate names)
    and objects whose content does not match their name."""
    import hashlib
    import zlib
    raw = b"%s %d\x00" % (type_name, len(body)) + body
    sha = name or hashlib.sha1(raw).hexdigest().encode()
    path = Path(repo.object_store.path, sha[:2].decode(), sha[2:].decode())
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zlib.compress(raw))
    return sha


def _tree_bytes(*entries: tuple[int, bytes, bytes]) -> bytes:
    return b"".join(b"%o %s\x00" % (mode, name) + bytes.fromhex(sha.decode()) for mode, name, sha in entries)


def _single(repo: Repo, name: bytes, mode: int, content: bytes = b"evil") -> Commit:
    blob = Blob.from_string(content)
    repo.object_store.add_object(blob)
    return _commit_tree(repo, _write_loose(repo, b"tree", _tree_bytes((mode, name, blob.id))))


def test_nested_dirs_modes_symlinks_empty_files(tmp_path):
    repo = _bare(tmp_path)
    empty, exe, text, target = (Blob.from_string(b) for b in (b"", b"#!/bin/sh\n", b"t\n", b"../top.txt"))
    for b in (empty, exe, text, target):
        repo.object_store.add_object(b)
    deep = Tree()
    deep.add(b"run.sh", 0o100755, exe.id)
    deep.add(b"empty", 0o100644, empty.id)
    deep.add(b"up", 0o120000, target.id)
    deep.add(b"legacy", 0o100664, text.id)  # old git wrote group-writable modes
    mid = Tree()
    mid.add(b"deep", 0o040000, deep.id)
    top = Tree()
    top.add(b"a", 0o040000, mid.id)
    top.add(b"top.txt", 0o100644, text.id)
    top.add(b"same.txt", 0o100644, text.id)  # one blob, two paths
    for t in (deep, mid, top):
        repo.object_store.add_object(t)
    dest = tmp_path / "out"
    assert checkout(repo, _commit_tree(repo, top.id), dest) == 6
    d = dest / "a" / "deep"
    assert (d / "empty").read_bytes() == b"" and (d / "empty").is_file()
    assert stat.S_IMODE((d / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "legacy").stat().st_mode) == 0o644
    assert stat.S_IMODE((d / "empty").stat().st_mode) == 0o644
    assert os.readlink(d / "up") == "../top.txt"
    assert (dest / "same.txt").read_bytes() == (dest / "top.txt").read_bytes() == b"t\n"


def test_modes_are_exact_under_a_strict_umask(tmp_path):
    repo = _bare(tmp_path)
    commit = _single(repo, b"run.sh", 0o100755, b"#!/bin/sh\n")
    old = os.umask(0o077)
    try:
        checkout(repo, commit, tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_submodule_becomes_an_empty_directory(tmp_path):
    repo = _bare(tmp_path)
    blob = Blob.from_string(b"x")
    repo.object_store.add_object(blob)
    tree = Tree()
    tree.add(b"lib", 0o160000, b"1" * 40)  # a commit of another repository: never present here
    tree.add(b"f", 0o100644, blob.id)
    repo.object_store.add_object(tree)
    dest = tmp_path / "out"
    assert checkout(repo, _commit_tree(repo, tree.id), dest) == 1
    assert (dest / "lib").is_dir() and not any((dest / "lib").iterdir())


def test_non_utf8_names_are_written_byte_exact(tmp_path):
    repo = _bare(tmp_path)
    dest = tmp_path / "out"
    checkout(repo, _single(repo, b"caf\xe9.txt", 0o100644, b"latin-1"), dest)
    assert os.listdir(os.fsencode(dest)) == [b"caf\xe9.txt"]
    assert Path(os.fsdecode(os.fsencode(dest) + b"/caf\xe9.txt")).read_bytes() == b"latin-1"


@pytest.mark.parametrize("bad", [b"..", b".", b"", b".git", b".GIT", b"a/b", b"/etc/passwd",
                                 b"../../evil"])
def test_hostile_raw_names_are_refused(tmp_path, bad):
    repo = _bare(tmp_path)
    with pytest.raises(DeployError, match="unsafe path"):
        checkout(repo, _single(repo, bad, 0o100644), tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_name_with_nul_is_a_malformed_tree(tmp_path):
    repo = _bare(tmp_path)
    with pytest.raises(DeployError, match="malformed"):
        checkout(repo, _single(repo, b"x\x00y", 0o100644), tmp_path / "out")


def test_hostile_nested_git_dir_is_refused(tmp_path):
    repo = _bare(tmp_path)
    blob = Blob.from_string(b"[core]\n")
    repo.object_store.add_object(blob)
    inner = _write_loose(repo, b"tree", _tree_bytes((0o100644, b"config", blob.id)))
    outer = _write_loose(repo, b"tree", _tree_bytes((0o040000, b".git", inner)))
    top = _write_loose(repo, b"tree", _tree_bytes((0o040000, b"sub", outer)))
    with pytest.raises(DeployError, match="unsafe path"):
        checkout(repo, _commit_tree(repo, top), tmp_path / "out")


def test_symlink_then_same_named_directory_cannot_escape(tmp_path):
    """A crafted tree naming `a` twice, first as a symlink out of the checkout, then as a
    directory holding a file: the file must not land in the symlink's target."""
    repo = _bare(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    link = Blob.from_string(os.fsencode(outside))
    payload = Blob.from_string(b"pwned")
    for b in (link, payload):
        repo.object_store.add_object(b)
    sub = _write_loose(repo, b"tree", _tree_bytes((0o100644, b"f", payload.id)))
    for order in ([(0o120000, b"a", link.id), (0o040000, b"a", sub)],
                  [(0o040000, b"a", sub), (0o120000, b"a", link.id)]):
        top = _write_loose(repo, b"tree", _tree_bytes(*order))
        dest = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        with pytest.raises(DeployError, match="twice"):
            checkout(repo, _commit_tree(repo, top), dest)
        assert not (outside / "f").exists()


def test_duplicate_file_names_are_refused(tmp_path):
    repo = _bare(tmp_path)
    one, two = Blob.from_string(b"1"), Blob.from_string(b"2")
    for b in (one, two):
        repo.object_store.add_object(b)
    top = _write_loose(repo, b"tree", _tree_bytes((0o100644, b"f", one.id), (0o100644, b"f", two.id)))
    with pytest.raises(DeployError, match="twice"):
        checkout(repo, _commit_tree(repo, top), tmp_path / "out")


@pytest.mark.parametrize("target", [b"", b"a\x00b"])
def test_invalid_symlink_targets_are_refused(tmp_path, target):
    repo = _bare(tmp_path)
    with pytest.raises(DeployError, match="symlink"):
        checkout(repo, _single(repo, b"l", 0o120000, target), tmp_path / "out")


def test_unknown_mode_is_refused(tmp_path):
    repo = _bare(tmp_path)
    with pytest.raises(DeployError, match="mode"):
        checkout(repo, _single(repo, b"fifo", 0o010644), tmp_path / "out")


def test_object_not_matching_its_sha_is_refused(tmp_path):
    repo = _bare(tmp_path)
    good = Blob.from_string(b"the real content")
    _write_loose(repo, b"blob", b"tampered content", name=good.id)
    tree = Tree()
    tree.add(b"f", 0o100644, good.id)
    repo.object_store.add_object(tree)
    with pytest.raises(DeployError, match="SHA-1"):
        checkout(repo, _commit_tree(repo, tree.id), tmp_path / "out")


def test_missing_blob_and_wrong_type_are_refused(tmp_path):
    repo = _bare(tmp_path)
    tree = Tree()
    tree.add(b"f", 0o100644, b"2" * 40)
    repo.object_store.add_object(tree)
    with pytest.raises(DeployError, match="missing object"):
        checkout(repo, _commit_tree(repo, tree.id), tmp_path / "out")
    blob = Blob.from_string(b"not a tree")
    repo.object_store.add_object(blob)
    wrong = Tree()
    wrong.add(b"d", 0o040000, blob.id)
    repo.object_store.add_object(wrong)
    with pytest.raises(DeployError, match="expected a tree"):
        checkout(repo, _commit_tree(repo, wrong.id), tmp_path / "out2")


# --- packs: several packs, deltas of both kinds, loose objects on top ------------------

def _similar_files(work: Path, round_: int) -> None:
    """Files that share most lines, so git stores most of them as deltas."""
    body = "".join(f"line {i} of a shared body\n" for i in range(200))
    for i in range(12):
        d = work / f"d{i % 3}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_text(body + f"file {i} round {round_}\n")
    (work / f"round{round_}.txt").write_text(f"{round_}\n")


def _archive_tree(tmp_path: Path, git_dir: Path, rev: str) -> dict:
    ref = tmp_path / f"ref-{rev}"
    ref.mkdir()
    subprocess.run(f"git --git-dir={git_dir} archive {rev} | tar -x -C {ref}", shell=True, check=True)
    return _tree(ref)


def _pack_counts(git_dir: Path) -> tuple[int, int]:
    """(pack files, delta objects across them) as git itself reports them."""
    packs = sorted((git_dir / "objects" / "pack").glob("*.idx"))
    deltas = 0
    for idx in packs:
        out = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True, text=True,
                             check=True).stdout
        deltas += sum(1 for line in out.splitlines() if len(line.split()) == 7)  # has a base
    return len(packs), deltas


def test_several_packs_with_deltas_plus_loose_objects(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    _similar_files(work, 1)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "1")
    _git(work, "repack", "-adq", "-f", "--depth=50", "--window=50")  # pack 1, OFS deltas
    _similar_files(work, 2)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "2")
    _git(work, "repack", "-dq")  # pack 2: only the new objects
    _similar_files(work, 3)
    (work / "d0" / "f0.txt").write_text("brand new\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "3")  # round 3: loose objects
    git_dir = work / ".git"
    packs, deltas = _pack_counts(git_dir)
    assert packs == 2 and deltas > 0
    assert list((git_dir / "objects").glob("[0-9a-f][0-9a-f]/*"))  # some objects are loose
    repo = Repo(str(work))
    for rev in ("main~2", "main~1", "main"):
        dest = tmp_path / f"out-{rev}"
        checkout(repo, repo[_git(work, "rev-parse", rev).strip().encode()], dest)
        assert _tree(dest) == _archive_tree(tmp_path, git_dir, rev)


@pytest.mark.parametrize("cache_bytes", [64 << 20, 1])
def test_ref_delta_pack(tmp_path, monkeypatch, cache_bytes):
    """git pack-objects without --delta-base-offset names delta bases by SHA (REF_DELTA).
    Everything is packed, so the store's own (slow) lookup must never be needed; a tiny
    delta-base cache still gives the same result."""
    from tova.server import checkout as checkout_mod
    monkeypatch.setattr(checkout_mod, "_BASE_CACHE_BYTES", cache_bytes)
    work = tmp_path / "w"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    for round_ in (1, 2):
        _similar_files(work, round_)
        _git(work, "add", "-A")
        _git(work, "commit", "-q", "-m", str(round_))
    bare = tmp_path / "b.git"
    _git(tmp_path, "init", "-q", "--bare", str(bare))
    objects = _git(work, "rev-list", "--objects", "--all")
    subprocess.run(["git", "pack-objects", "-q", "--window=50", "--depth=50", str(bare / "objects" / "pack" / "pack")],
                   input=objects, text=True, cwd=work, check=True, capture_output=True)
    head = _git(work, "rev-parse", "HEAD").strip()
    (bare / "refs" / "heads" / "main").write_text(head + "\n")
    assert _pack_counts(bare)[1] > 0
    repo = Repo(str(bare))
    commit = resolve_commit(repo, "main")

    def no_fallback(sha):
        raise AssertionError(f"{sha!r} was not read from the pack")
    monkeypatch.setattr(repo.object_store, "get_raw", no_fallback)
    dest = tmp_path / "out"
    checkout(repo, commit, dest)
    assert _tree(dest) == _archive_tree(tmp_path, bare, "main")


@pytest.mark.parametrize("packed", [False, True])
def test_big_blobs_stream_byte_exact(tmp_path, monkeypatch, packed):
    """Blobs from STREAM_BYTES on are inflated in chunks into the file (flat memory: see
    benchmarks/bench_checkout_memory.py); the bytes and the SHA-1 check are the same."""
    from tova.server import checkout as co

    monkeypatch.setattr(co, "STREAM_BYTES", 1 << 16)
    monkeypatch.setattr(co, "_CHUNK", 4096)
    work = tmp_path / "w"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    big = os.urandom(3 << 20) + b"\0" * (2 << 20)  # incompressible, then very compressible
    (work / "big.bin").write_bytes(big)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "big")
    if packed:
        _git(work, "gc", "-q")
    repo = Repo(str(work / ".git"))
    out = tmp_path / "out"
    checkout(repo, resolve_commit(repo, "main"), out)
    assert (out / "big.bin").read_bytes() == big
