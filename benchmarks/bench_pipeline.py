"""The toolkit's own time in a no-infrastructure-change deploy of a 1,000-file repository,
excluding the compiler run and the restart/health waits. Plain figures, no assertions
(goal: toolkit time < 0.5 s). Runs the real pipeline in-process with the LocalSystem."""

from __future__ import annotations

import io
import os
import shutil
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
from tova.server import pipeline  # noqa: E402
from tova.server.system import LocalSystem  # noqa: E402
from tova.server.ui import Out  # noqa: E402
from tova.settings import load_settings  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "1000"))


def main() -> None:
    # BENCH_DIR=/dev/shm separates the toolkit from a slow disk (file creation dominates).
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=os.environ.get("BENCH_DIR")))
    site = Site(tmp)
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
        waits = {"compiler": 0.0, "restart+health": 0.0}
        real_popen, real_restart = pipeline.subprocess.Popen, pipeline.restart_all

        class TimedPopen(real_popen):  # the compiler is the only Popen the pipeline makes
            def __init__(self, *a, **kw):
                self._t = time.perf_counter()
                super().__init__(*a, **kw)

            def wait(self, *a, **kw):
                rc = super().wait(*a, **kw)
                waits["compiler"] += time.perf_counter() - self._t
                return rc

        def timed_restart(*a, **kw):
            t = time.perf_counter()
            try:
                return real_restart(*a, **kw)
            finally:
                waits["restart+health"] += time.perf_counter() - t

        pipeline.subprocess.Popen, pipeline.restart_all = TimedPopen, timed_restart
        profile = os.environ.get("BENCH_PROFILE")
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        outcome = pipeline.deploy(settings, site.layout, site.app, "prod", Repo(str(site.app.repo)),
                                  system, Out(io.StringIO()), commit.encode(), "main")
        total = time.perf_counter() - t
        if profile:
            prof.disable()
            prof.dump_stats(profile)
        assert outcome.status == "ok", outcome
        toolkit = total - waits["compiler"] - waits["restart+health"]
        print(f"files in repo: {FILES + 2}, deployed {outcome.version}, no infrastructure change")
        print(f"{'total':22} {total:7.3f} s")
        print(f"{'compiler':22} {waits['compiler']:7.3f} s")
        print(f"{'restart + health':22} {waits['restart+health']:7.3f} s")
        print(f"{'toolkit own time':22} {toolkit:7.3f} s   (goal < 0.5)")
    finally:
        site.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
