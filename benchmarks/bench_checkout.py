"""dulwich checkout vs `git archive | tar -x` on the same 10,000-file commit.
Plain figures, no assertions (goal: dulwich within 1.5x of git)."""

from __future__ import annotations

import os
import shutil
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


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-checkout-", dir=os.environ.get("BENCH_DIR")))
    try:
        bare = make_repo(base)
        repo = Repo(str(bare))
        commit = resolve_commit(repo, "main")
        counter = iter(range(1000))

        def dulwich_run():
            checkout(repo, commit, base / f"dul{next(counter)}")

        def git_run():
            dest = base / f"git{next(counter)}"
            dest.mkdir()
            subprocess.run(f"git --git-dir={bare} archive main | tar -x -C {dest}", shell=True, check=True)

        d = best_of(3, dulwich_run)
        g = best_of(3, git_run)
        print(f"files: {FILES}")
        print(f"{'dulwich checkout':28} {d:8.3f} s")
        print(f"{'git archive | tar -x':28} {g:8.3f} s")
        print(f"{'ratio dulwich/git':28} {d / g:8.2f} x   (goal <= 1.5)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
