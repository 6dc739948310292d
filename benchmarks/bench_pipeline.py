"""The toolkit's own time in a no-infrastructure-change deploy of a 1,000-file repository,
excluding the compiler run and the restart/health waits. Plain figures, no assertions
(goal: toolkit time < 0.5 s). Runs the real pipeline in-process with the LocalSystem.

Median of BENCH_RUNS deploys (default 5) of the same commit, on each of /tmp and /dev/shm
(BENCH_DIR=<dir>: that directory only), beside two references measured in the same place:
the checkout step alone, and `git archive | tar -x` of the same commit (the cost of creating
that many files on that filesystem)."""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from dulwich.repo import Repo  # noqa: E402
from release_harness import Site  # noqa: E402

from tova.progress import Out  # noqa: E402
from tova.server import pipeline  # noqa: E402
from tova.server.local_system import LocalSystem  # noqa: E402
from tova.settings import load_settings  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "1000"))


RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def bench_dirs() -> list[str]:
    if os.environ.get("BENCH_DIR"):
        return [os.environ["BENCH_DIR"]]
    return [d for d in ("/tmp", "/dev/shm") if os.path.isdir(d)]


def measure(where: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=where))
    site = Site(tmp)
    saved_env = dict(os.environ)
    real = (pipeline.subprocess.Popen, pipeline.restart_all, pipeline.checkout)
    try:
        site.write_app("bench v1", instances=1)
        for i in range(FILES):
            d = site.work / "assets" / f"d{i % 20}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_text(f"asset {i}\n")
        site.commit()
        assert site.push().returncode == 0
        site.write_app("bench v3", instances=1)
        commit = site.commit()
        # store the commit without deploying it (the hook dies before its first step)
        subprocess.run(["git", "push", "-q", "prod", "main"], cwd=site.work,
                       env={**site.env, "TOVA_FAULT_INJECT": "checkout"}, capture_output=True)

        os.environ.update({k: v for k, v in site.env.items() if k.startswith("TOVA_")})
        settings = load_settings()
        system = LocalSystem(site.layout)
        waits = {"compiler": 0.0, "restart+health": 0.0, "checkout": 0.0}
        real_popen, real_restart, real_checkout = real

        class TimedPopen(real_popen):  # the compiler is the only Popen the pipeline makes
            def __init__(self, *a, **kw):
                self._t = time.perf_counter()
                super().__init__(*a, **kw)

            def wait(self, *a, **kw):
                rc = super().wait(*a, **kw)
                waits["compiler"] += time.perf_counter() - self._t
                return rc

        def timed(key, fn):
            def wrapper(*a, **kw):
                t = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    waits[key] += time.perf_counter() - t
            return wrapper

        pipeline.subprocess.Popen = TimedPopen
        pipeline.restart_all = timed("restart+health", real_restart)
        pipeline.checkout = timed("checkout", real_checkout)
        profile = os.environ.get("BENCH_PROFILE")
        rows: list[dict[str, float]] = []
        for run in range(RUNS):
            for key in waits:
                waits[key] = 0.0
            if profile and run == 0:
                import cProfile
                prof = cProfile.Profile()
                prof.enable()
            t = time.perf_counter()
            repo = Repo(str(site.app.repo))
            outcome = pipeline.deploy(settings, site.layout, site.app, "prod", repo,
                                      system, Out(io.StringIO()), commit.encode(), "main")
            total = time.perf_counter() - t
            repo.close()
            if profile and run == 0:
                prof.disable()
                prof.dump_stats(profile)
            assert outcome.status == "ok", outcome
            rows.append({"total": total, **waits,
                         "toolkit": total - waits["compiler"] - waits["restart+health"]})
            # reference: git writing the same commit's files in the same directory
            ref = tmp / f"git-archive-{run}"
            ref.mkdir()
            t = time.perf_counter()
            subprocess.run(f"git --git-dir={site.app.repo} archive {commit} | tar -x -C {ref}",
                           shell=True, check=True)
            rows[-1]["git archive|tar"] = time.perf_counter() - t
        return {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    finally:
        pipeline.subprocess.Popen, pipeline.restart_all, pipeline.checkout = real
        os.environ.clear()
        os.environ.update(saved_env)
        site.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    print(f"files in repo: {FILES + 2}, redeploys with no infrastructure change, median of {RUNS}")
    keys = ["total", "compiler", "restart+health", "toolkit", "checkout", "git archive|tar"]
    print(f"{'directory':12}" + "".join(f"{k:>17}" for k in keys))
    for where in bench_dirs():
        m = measure(where)
        print(f"{where:12}" + "".join(f"{m[k]:16.3f}s" for k in keys)
              + "   (goal: toolkit < 0.5 s)", flush=True)


if __name__ == "__main__":
    main()
