"""Rollback time beside the app's own boot time (goal: rollback within 1 s of the boot).

Rollback = `tova-release rollback` as a user runs it: a new process that flips `current`,
restarts the instance and waits for its first healthy answer. The reference is the same
release's server started by hand until its first healthy answer, measured in the same run.
Runs in a temp root with the LocalSystem adapter (plain processes; the systemd path adds
systemctl's own start-up)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from release_harness import Site, free_port_block  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as r:
            return r.status == 200
    except OSError:
        return False


def app_boot_seconds(release: Path, runtime: str) -> float:
    port = free_port_block(1)
    t0 = time.perf_counter()
    proc = subprocess.Popen([runtime, str(release / "server.js")], env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not healthy(port):
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("the app did not become healthy")
            time.sleep(0.01)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    site = Site(tmp)
    try:
        for body in ("v1", "v2"):
            site.write_app(f"hello {body}", instances=1)
            site.commit(body)
            res = site.push()
            assert res.returncode == 0 and "Live at" in res.stderr, res.stderr
        runtime = shutil.which("bun") or shutil.which("node")
        boots, rollbacks = [], []
        for _ in range(RUNS):
            boots.append(app_boot_seconds(site.app.current.resolve(), runtime))
            target = "v1" if site.current() == "v2" else "v2"
            t0 = time.perf_counter()
            site.release("rollback", "myapp", "--to", target, check=True)
            rollbacks.append(time.perf_counter() - t0)
            assert site.current() == target
        boot, rollback = statistics.median(boots), statistics.median(rollbacks)
        print(f"runtime: {runtime}, median of {RUNS}")
        print(f"{'app boot to first healthy answer (reference)':48}{boot:8.3f} s")
        print(f"{'tova-release rollback (whole command)':48}{rollback:8.3f} s")
        print(f"{'rollback - boot':48}{rollback - boot:8.3f} s   (goal: < 1.0 s)")
    finally:
        site.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
