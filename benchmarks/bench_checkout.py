"""dulwich checkout vs `git archive | tar -x` on the same 10,000-file commit, side by side:
median of BENCH_RUNS interleaved runs (default 5) on each of /tmp and /dev/shm (BENCH_DIR=<dir>
measures one directory only). Plain figures, no assertions (goal: dulwich within 1.5x of git).

On a disk, the kernel's inode allocation can dominate both columns (see the figures on /dev/shm
for the toolkit's own share)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dulwich.repo import Repo  # noqa: E402

from tova.server.checkout import checkout, resolve_commit  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "10000"))


def make_repo(base: Path) -> Path:
    work = base / "work"
    work.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@e"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=work, check=True)
    for i in range(FILES):
        d = work / f"d{i % 100:02d}" / f"s{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.js").write_text(f"export const v{i} = {i};\n" * (1 + i % 20))
    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "bench"], cwd=work, check=True, env=env)
    bare = base / "repo.git"
    # Objects arrive the way a deploy receives them: through git push (one pack).
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=work, check=True, env=env)
    return bare


RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def bench_dirs() -> list[str]:
    if os.environ.get("BENCH_DIR"):
        return [os.environ["BENCH_DIR"]]
    return [d for d in ("/tmp", "/dev/shm") if os.path.isdir(d)]


def measure(where: str) -> tuple[float, float, int]:
    """(dulwich median, git median, files written) for one directory."""
    base = Path(tempfile.mkdtemp(prefix="bench-checkout-", dir=where))
    try:
        bare = make_repo(base)
        repo = Repo(str(bare))
        commit = resolve_commit(repo, "main")
        dul, git, count = [], [], 0
        for i in range(RUNS):  # interleaved, so a burst of load hits both columns alike
            t = time.perf_counter()
            count = checkout(repo, commit, base / f"dul{i}")
            dul.append(time.perf_counter() - t)
            dest = base / f"git{i}"
            dest.mkdir()
            t = time.perf_counter()
            subprocess.run(f"git --git-dir={bare} archive main | tar -x -C {dest}", shell=True, check=True)
            git.append(time.perf_counter() - t)
        repo.close()
        return statistics.median(dul), statistics.median(git), count
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print(f"files: {FILES}, median of {RUNS} runs")
    print(f"{'directory':12} {'dulwich':>9} {'git|tar':>9} {'ratio':>7}")
    for where in bench_dirs():
        d, g, count = measure(where)
        assert count == FILES, count
        print(f"{where:12} {d:8.3f}s {g:8.3f}s {d / g:6.2f}x   (goal <= 1.5)", flush=True)


if __name__ == "__main__":
    main()
