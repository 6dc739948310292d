"""A code-only deploy of an app with npm dependencies beside the same deploy of an app
without any (goal: unchanged dependencies cost < 0.3 s, thanks to the dependency cache).

Both apps are deployed by `git push` into a temp root (LocalSystem adapter, the fixture
compiler, real `bun install` from the registry for the first deploy of the app with
dependencies); then RUNS code-only pushes each, timed whole (the hook deploys before the
push returns), alternated so that machine noise hits both alike."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from release_harness import Site  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
NPM = '\n[npm]\nms = "2.1.3"\n'


def push(site: Site, body: str) -> float:
    site.write_app(body, instances=1)
    site.commit(body)
    t0 = time.perf_counter()
    res = site.push()
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0 and "Live at" in res.stderr, res.stderr
    return elapsed


def cached_dependency_work(site: Site, runs: int = 50) -> float:
    """What a deploy with unchanged dependencies adds, timed without the machine's noise
    around a whole push: find the set, see the cached install and its copy for the build,
    link it (median)."""
    from tova.server import deps
    from tova.server.tooling import bun_binary

    release = site.app.current.resolve()
    out = Path(tempfile.mkdtemp(prefix="bench-deps-link-"))
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        spec = deps.dependency_spec(site.work, deps.server_imports(release), "myapp", "1.4.5")
        assert spec is not None
        target, _, reused = deps.install(spec, site.app, bun_binary(), lambda argv, cwd: 1, work=out / "w")
        assert (deps.build_copy(target, lambda path: None) / "ms" / "package.json").is_file()
        (out / "node_modules").unlink(missing_ok=True)
        deps.link(out, target)
        samples.append(time.perf_counter() - t0)
        assert reused
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(samples)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-deps-"))
    plain, withdeps = Site(tmp / "plain"), Site(tmp / "deps")
    try:
        toml = withdeps.work / "tova.toml"
        toml.write_text(toml.read_text() + NPM)
        push(plain, "hello v0")
        first = push(withdeps, "hello v0")
        assert (withdeps.app.current / "node_modules" / "ms" / "package.json").is_file()
        times: dict[str, list[float]] = {"plain": [], "deps": []}
        for i in range(1, RUNS + 1):
            times["plain"].append(push(plain, f"hello v{i}"))
            times["deps"].append(push(withdeps, f"hello v{i}"))
        a, b = statistics.median(times["plain"]), statistics.median(times["deps"])
        own = cached_dependency_work(withdeps)
        print(f"median of {RUNS} code-only deploys (whole `git push`, LocalSystem, 1 instance)")
        print(f"{'first deploy with dependencies (bun install)':52}{first:8.3f} s")
        print(f"{'no dependencies (reference)':52}{a:8.3f} s")
        print(f"{'unchanged dependencies (ms 2.1.3, cached)':52}{b:8.3f} s")
        print(f"{'difference':52}{b - a:8.3f} s   (goal: < 0.3 s)")
        print(f"{'of which the dependency work itself (in process)':52}{own:8.4f} s")
    finally:
        plain.close()
        withdeps.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
