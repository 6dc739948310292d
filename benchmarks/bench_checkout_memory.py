"""Peak memory of checking out a commit with one big file (BENCH_MB, default 200 MB), the
blob loose (as a small push leaves it) and packed: the streaming checkout beside the
whole-object read it replaced (ObjectReader.get), each in a fresh process. Plain figures,
no assertions (goal: under 100 MB whatever the file size)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = int(os.environ.get("BENCH_MB", "200"))

CHILD = r"""
import os, resource, sys
sys.path.insert(0, sys.argv[1])
from dulwich.repo import Repo
from tova.server.checkout import ObjectReader, checkout, resolve_commit
repo = Repo(sys.argv[2])
commit = resolve_commit(repo, "main")
if sys.argv[4] == "stream":
    checkout(repo, commit, __import__("pathlib").Path(sys.argv[3]))
else:  # the reference: the whole blob in memory, as before streaming
    with ObjectReader(repo.object_store) as r:
        sha = [e for e in r.tree(commit.tree) if e[0] == b"big.bin"][0][2]
        data = r.get(sha, 3)
        with open(sys.argv[3], "wb") as f:
            f.write(data)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def peak(repo: Path, dest: Path, how: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(repo), str(dest), how],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        with open(work / "big.bin", "wb") as f:
            for _ in range(MB):
                f.write(os.urandom(1 << 20))
        (work / "app.tova").write_text("// app\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "big")
        print(f"checkout of a commit with a {MB} MB file: peak RSS in MB")
        for label in ("loose", "packed"):
            if label == "packed":
                git(work, "gc", "-q")
            repo = work / ".git"
            stream = peak(repo, Path(tmp) / f"out-{label}", "stream")
            whole = peak(repo, Path(tmp) / f"whole-{label}", "whole")
            print(f"  {label:7} streaming {stream:5d}   whole object (reference) {whole:5d}")


if __name__ == "__main__":
    main()
