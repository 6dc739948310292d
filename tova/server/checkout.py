"""Materialize a commit's tree into a fresh directory with dulwich (no git CLI):
exact bytes, executable bits (0755 / 0644) and symlinks. Names from the tree are checked so
a hostile commit cannot write outside the target directory.

Speed: dulwich's generic object iteration inflates every packed object twice and rebuilds a
ShaFile per object. Here pack files are read directly (dulwich still parses the pack index):
each needed object is inflated once from an mmap, delta bases are cached, and the bytes go
straight to os.write. Loose objects and alternates go through the store's get_raw. Every
object's SHA-1 is still checked (one hashlib call, a few per cent of the run), so a corrupt
pack cannot deploy silently."""

from __future__ import annotations

import hashlib
import mmap
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dulwich.diff_tree import tree_changes
from dulwich.errors import ObjectFormatException
from dulwich.objects import Commit, parse_tree
from dulwich.pack import OFS_DELTA, REF_DELTA, apply_delta
from dulwich.repo import Repo

if TYPE_CHECKING:  # typing-only names: older dulwich releases lack some of them
    from dulwich.object_store import PackBasedObjectStore
    from dulwich.objects import ObjectID, RawObjectID
    from dulwich.pack import Pack

from tova.errors import DeployError
from tova.server.release_tree import check_link

_TREE, _BLOB = 2, 3
STREAM_BYTES = 8 << 20  # blobs from this size on are inflated in chunks (flat memory)
_CHUNK = 1 << 20
_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_BAD_NAMES = {b"", b".", b".."}
_MAX_DEPTH = 256  # one open directory fd per level; git trees deeper than this are hostile
_BASE_CACHE_BYTES = 64 << 20  # delta bases kept inflated while they are likely reused

_O_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


class _Corrupt(Exception):
    pass


class _PackFile:
    """One pack: dulwich's index for sha -> offset, the pack bytes through an mmap."""

    def __init__(self, pack: Pack) -> None:
        self.index = pack.index
        self.path = pack.data.path
        with open(pack.data.path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.view = memoryview(self.map)
        self.end = len(self.map) - 20  # trailing pack checksum

    def offset(self, raw_sha: bytes) -> int | None:
        try:
            raw: RawObjectID = cast("RawObjectID", raw_sha)  # dulwich's typed bytes
            return int(self.index.object_offset(raw))
        except KeyError:
            return None

    def close(self) -> None:
        self.view.release()
        self.map.close()


class ObjectReader:
    """Raw object bytes by hex SHA-1, each object inflated once and verified."""

    def __init__(self, store: PackBasedObjectStore) -> None:
        self.store = store
        self.packs = [_PackFile(p) for p in store.packs]
        self.cache: dict[tuple[int, int], tuple[int, bytes]] = {}
        self.cache_bytes = 0

    def close(self) -> None:
        self.cache.clear()
        for p in self.packs:
            p.close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, hexsha: bytes, want: int) -> bytes:
        raw_sha = bytes.fromhex(hexsha.decode("ascii"))
        type_num, data = self._raw(raw_sha, hexsha)
        if type_num != want:
            raise DeployError(f"object {hexsha.decode()} is a {_TYPE_NAMES.get(type_num, b'?').decode()}, "
                              f"expected a {_TYPE_NAMES[want].decode()}",
                              hint="the repository is corrupt; run `git fsck` in it and push again")
        h = hashlib.sha1(b"%s %d\x00" % (_TYPE_NAMES[type_num], len(data)))
        h.update(data)
        if h.digest() != raw_sha:
            raise DeployError(f"object {hexsha.decode()} does not match its SHA-1",
                              hint="the repository is corrupt; run `git fsck` in it and push again")
        return data

    def _raw(self, raw_sha: bytes, hexsha: bytes) -> tuple[int, bytes]:
        for i, pack in enumerate(self.packs):
            off = pack.offset(raw_sha)
            if off is not None:
                try:
                    return self._at(i, off)
                except (_Corrupt, zlib.error, IndexError, ValueError) as exc:
                    raise DeployError(f"cannot read object {hexsha.decode()} from its pack: {exc}",
                                      hint="the repository is corrupt; run `git fsck` in it and push again") from exc
        try:  # loose objects (fresh from a push), packs added since we opened, alternates
            sha: ObjectID = cast("ObjectID", hexsha)  # dulwich's typed bytes
            return self.store.get_raw(sha)
        except KeyError:
            raise DeployError(f"the repository is missing object {hexsha.decode()}",
                              hint="push again") from None
        except (ObjectFormatException, zlib.error, ValueError) as exc:
            raise DeployError(f"object {hexsha.decode()} is malformed: {exc}",
                              hint="the repository is corrupt; run `git fsck` in it and push again") from exc

    def write_blob(self, hexsha: bytes, fd: int) -> None:
        """Write a blob's bytes to fd. A big one stored whole (a loose object, or a packed
        one that is not a delta) is inflated in chunks straight into fd, so memory stays
        flat whatever the file's size; anything else goes through get()."""
        raw_sha = bytes.fromhex(hexsha.decode("ascii"))
        for pack in self.packs:
            off = pack.offset(raw_sha)
            if off is not None:
                if self._stream_packed(pack, off, raw_sha, hexsha, fd):
                    return
                break
        else:
            root = getattr(self.store, "path", None)
            loose = Path(root or "/nonexistent") / hexsha[:2].decode() / hexsha[2:].decode()
            if root and loose.is_file() and loose.stat().st_size > STREAM_BYTES // 4:
                with open(loose, "rb") as f:
                    self._inflate_to(lambda: f.read(_CHUNK), None, raw_sha, hexsha, fd)
                return
        _write_all(fd, self.get(hexsha, _BLOB))

    def _stream_packed(self, pack: _PackFile, offset: int, raw_sha: bytes, hexsha: bytes, fd: int) -> bool:
        m = pack.map
        c = m[offset]
        pos = offset + 1
        type_num, size, shift = (c >> 4) & 7, c & 15, 4
        while c & 0x80:
            c = m[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            shift += 7
        if type_num != _BLOB or size < STREAM_BYTES:
            return False
        # pread, not the mmap: mapped pages would count as this process's memory.
        src = os.open(pack.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pieces = (os.pread(src, min(_CHUNK, pack.end - at), at) for at in range(pos, pack.end, _CHUNK))
            self._inflate_to(lambda: next(pieces, b""), size, raw_sha, hexsha, fd)
        finally:
            os.close(src)
        return True

    @staticmethod
    def _inflate_to(read: Callable[[], bytes], size: int | None, raw_sha: bytes, hexsha: bytes, fd: int) -> None:
        """Inflate zlib data from read() into fd in bounded pieces; a loose object's
        "blob N\\0" header (size None) is checked and hashed; the SHA-1 is always verified."""
        inflater = zlib.decompressobj()
        h = hashlib.sha1(b"blob %d\x00" % size) if size is not None else hashlib.sha1()
        header = size is None
        written = 0
        pending = b""
        while not inflater.eof:
            data = inflater.unconsumed_tail or read()
            if not data:
                break
            out = inflater.decompress(data, _CHUNK)
            if header:
                pending += out
                if b"\x00" not in pending:
                    continue
                head, out = pending.split(b"\x00", 1)
                kind, _, n = head.partition(b" ")
                if kind != b"blob" or not n.isdigit():
                    raise DeployError(f"object {hexsha.decode()} is not a blob",
                                      hint="the repository is corrupt; run `git fsck` in it and push again")
                size, header = int(n), False
                h.update(head + b"\x00")
            h.update(out)
            _write_all(fd, out)
            written += len(out)
        if header or not inflater.eof or written != size or h.digest() != raw_sha:
            raise DeployError(f"object {hexsha.decode()} does not match its SHA-1",
                              hint="the repository is corrupt; run `git fsck` in it and push again")

    def tree(self, hexsha: bytes) -> list[tuple[bytes, int, bytes]]:
        """A tree's entries (name, mode, hex sha)."""
        try:
            return list(parse_tree(self.get(hexsha, _TREE), 20))
        except (ObjectFormatException, ValueError) as exc:
            raise DeployError(f"tree {hexsha.decode()} is malformed: {exc}",
                              hint="the repository is corrupt; run `git fsck` in it and push again") from exc

    def _at(self, i: int, offset: int) -> tuple[int, bytes]:
        """The fully resolved object at `offset` of pack `i`."""
        start = offset
        chain: list[tuple[int, bytes]] = []  # (offset, delta) from the object down to a base
        base_key: tuple[int, int] | None = None
        while True:
            hit = self.cache.get((i, offset))
            if hit is not None:
                type_num, data = hit
                break
            type_num, data, base = self._entry(i, offset)
            if base is None:
                base_key = (i, offset)
                break
            chain.append((offset, data))
            if isinstance(base, int):
                offset = base
                continue
            ref_off = self.packs[i].offset(base)
            if ref_off is None:  # thin pack: base stored elsewhere (receive-pack normally fixes this)
                type_num, data = self._raw(base, base.hex().encode())
                break
            offset = ref_off
        if chain and base_key is not None:
            self._remember(base_key, type_num, data)
        for off, delta in reversed(chain):
            data = b"".join(apply_delta(data, delta))
            if off != start:  # an intermediate base: its siblings will want it too
                self._remember((i, off), type_num, data)
        return type_num, data

    def _remember(self, key: tuple[int, int], type_num: int, data: bytes) -> None:
        if key in self.cache:
            return
        if self.cache_bytes + len(data) > _BASE_CACHE_BYTES:
            self.cache.clear()
            self.cache_bytes = 0
        self.cache[key] = (type_num, data)
        self.cache_bytes += len(data)

    def _entry(self, i: int, offset: int) -> tuple[int, bytes, int | bytes | None]:
        """Header and inflated payload at `offset`: (type, data, delta base or None)."""
        pack = self.packs[i]
        m = pack.map
        c = m[offset]
        pos = offset + 1
        type_num = (c >> 4) & 7
        size = c & 15
        shift = 4
        while c & 0x80:
            c = m[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            shift += 7
        base: int | bytes | None = None
        if type_num == OFS_DELTA:
            c = m[pos]
            pos += 1
            rel = c & 0x7F
            while c & 0x80:
                c = m[pos]
                pos += 1
                rel = ((rel + 1) << 7) | (c & 0x7F)
            base = offset - rel
            if not 0 <= base < offset:
                raise _Corrupt(f"bad delta base offset at {offset}")
        elif type_num == REF_DELTA:
            base = m[pos:pos + 20]
            pos += 20
        elif type_num not in _TYPE_NAMES:
            raise _Corrupt(f"unknown object type {type_num} at {offset}")
        # deflate never grows data by more than ~0.1 % plus a few bytes: one call suffices
        inflater = zlib.decompressobj()
        limit = min(pack.end, pos + size + (size >> 9) + 64)
        data = inflater.decompress(pack.view[pos:limit])
        while not inflater.eof and limit < pack.end:
            data += inflater.decompress(pack.view[limit:limit + 65536])
            limit += 65536
        if not inflater.eof or len(data) != size:
            raise _Corrupt(f"bad compressed data at {offset}")
        return type_num, data, base


def _umask() -> int:
    try:  # Linux >= 4.7 shows it without changing it (os.umask would, racily)
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_name(name: bytes) -> None:
    # ".git" in any case: git itself refuses it (case-insensitive filesystems, core.protectNTFS)
    if name in _BAD_NAMES or b"/" in name or b"\x00" in name or name.lower() == b".git":
        raise DeployError(f"refusing to check out unsafe path name {name!r}",
                          hint="rename that file in the repository")


def checkout(repo: Repo, commit: Commit, dest: Path, owner: tuple[int, int] | None = None) -> int:
    """Write the commit's tree into `dest` (must not exist). Returns the count of files and
    symlinks written. Submodules (gitlinks) become empty directories, as with git archive.
    With `owner` (uid, gid) every entry belongs to that user (the build user), set through
    the entry's own descriptor, never by path.

    Every directory is opened with O_NOFOLLOW and entries are created relative to it with
    O_EXCL, so neither a symlink nor a duplicate entry in the tree can redirect a write."""
    dest_b = os.fsencode(dest)
    fix_modes = _make_root(dest_b, owner)
    count = 0
    links: list[str] = []
    with ObjectReader(repo.object_store) as reader:
        root = os.open(dest_b, _O_DIR)
        # Depth-first, one open fd per level: (dir fd, its entries, next entry, display path).
        stack = [(root, reader.tree(commit.tree), b"")]
        try:
            while stack:
                dfd, entries, where = stack[-1]
                if not entries:
                    os.close(dfd)
                    stack.pop()
                    continue
                name, mode, sha = entries.pop()
                _check_name(name)
                kind = mode >> 12
                try:
                    if kind == 0o10:  # regular file
                        _write_file(dfd, name, reader, sha, mode, fix_modes, owner)
                        count += 1
                    elif kind == 0o12:  # symlink: the blob is the target
                        _write_link(dfd, name, reader.get(sha, _BLOB), where, owner)
                        links.append((where + name).decode("utf-8", "surrogateescape"))
                        count += 1
                    elif kind in (0o04, 0o16):  # tree, or gitlink (submodule): empty, as git archive
                        sub = _make_dir(dfd, name, fix_modes, owner)
                        if kind != 0o04:
                            os.close(sub)
                        else:
                            stack.append(_level(sub, reader, sha, where + name + b"/", len(stack)))
                    else:
                        raise DeployError(f"{where + name!r} has an unknown file mode {mode:o}",
                                          hint="the repository is corrupt; run `git fsck` in it")
                except FileExistsError:
                    raise DeployError(f"the tree names {where + name!r} twice",
                                      hint="the repository is corrupt; run `git fsck` in it") from None
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)
    # Nothing may read or serve through a pushed symlink to elsewhere on the server (the
    # deploy block is read as root; public/ is served by the proxy).
    for rel in links:
        check_link(dest, rel, where="the project")
    return count


def _make_root(dest: bytes, owner: tuple[int, int] | None) -> bool:
    """Create the checkout's root; whether modes need fixing after creation (with the usual
    umask, 022, they are right at creation; a stricter one needs a chmod)."""
    os.mkdir(dest, 0o755)
    fix_modes = bool(_umask() & 0o755)
    if fix_modes:
        os.chmod(dest, 0o755)
    if owner is not None:
        os.chown(dest, *owner, follow_symlinks=False)
    return fix_modes


def _level(fd: int, reader: ObjectReader, sha: bytes, where: bytes,
           depth: int) -> tuple[int, list[tuple[bytes, int, bytes]], bytes]:
    """The next level of the depth-first walk: the open directory, its entries, its path."""
    if depth >= _MAX_DEPTH:
        os.close(fd)
        raise DeployError(f"directory {where.rstrip(b'/')!r} is nested too deeply",
                          hint=f"keep the project under {_MAX_DEPTH} levels")
    return fd, reader.tree(sha), where


def _write_file(dfd: int, name: bytes, reader: ObjectReader, sha: bytes, mode: int, fix_modes: bool,
                owner: tuple[int, int] | None) -> None:
    perm = 0o755 if mode & 0o100 else 0o644
    fd = os.open(name, _O_FILE, perm, dir_fd=dfd)
    try:
        reader.write_blob(sha, fd)
        if fix_modes:
            os.fchmod(fd, perm)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_link(dfd: int, name: bytes, target: bytes, where: bytes, owner: tuple[int, int] | None) -> None:
    if not target or b"\x00" in target:
        raise DeployError(f"symlink {where + name!r} has an invalid target",
                          hint="fix the symlink in the repository")
    os.symlink(target, name, dir_fd=dfd)
    if owner is not None:
        os.chown(name, *owner, dir_fd=dfd, follow_symlinks=False)


def _make_dir(dfd: int, name: bytes, fix_modes: bool, owner: tuple[int, int] | None) -> int:
    """A new directory `name` in `dfd`, opened (O_NOFOLLOW): its descriptor."""
    os.mkdir(name, 0o755, dir_fd=dfd)
    sub = os.open(name, _O_DIR, dir_fd=dfd)
    if fix_modes:
        os.fchmod(sub, 0o755)
    if owner is not None:
        os.fchown(sub, *owner)
    return sub


def commit_object(repo: Repo, sha: bytes) -> Commit:
    obj = repo[sha]
    if not isinstance(obj, Commit):
        raise DeployError(f"{sha.decode()} is not a commit", hint="push a branch, not a tag or tree")
    return obj


def changed_files(repo: Repo, old: bytes | None, new: bytes) -> int | None:
    """How many paths differ between two commits; None when there is no old commit."""
    if old is None:
        return None
    try:
        old_tree = commit_object(repo, old).tree
    except (KeyError, DeployError):
        return None
    return sum(1 for _ in tree_changes(repo.object_store, old_tree, commit_object(repo, new).tree))
