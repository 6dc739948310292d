"""Front-end figures: reading + inference throughput on a generated ~50,000-line project,
and the start-up time of `tova deploy <env> --plan` (whole process) beside a bare
`python -c pass`, measured in the same run so machine noise affects both alike.

Goals: the large project's plan in under 1 s; a small project's plan in under 0.3 s."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gen_project import generate  # noqa: E402


def median_seconds(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from tova.project import load_manifest

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big"
        lines = generate(big)
        load_manifest(big, "prod")  # warm the grammar cache and imports
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            load_manifest(big, "prod")
            runs.append(time.perf_counter() - t0)
        read_s = statistics.median(runs)
        print(f"front end (read + infer, in process): {lines} lines in {read_s:.3f} s "
              f"= {lines / read_s:,.0f} lines/s")

        tova = [sys.executable, "-m", "tova.cli"]
        floor = median_seconds([sys.executable, "-c", "pass"], 5, REPO)
        big_plan = median_seconds(tova + ["deploy", "prod", "--plan", "--local", "--project", str(big)], 5, REPO)
        small_plan = median_seconds(
            tova + ["deploy", "prod", "--plan", "--local", "--project", str(REPO / "examples/minimal")], 9, REPO
        )
        print(f"{'':38}{'seconds':>9}  {'goal':>6}")
        print(f"{'python -c pass (reference floor)':38}{floor:9.3f}")
        print(f"{'plan, large project (' + str(lines) + ' lines)':38}{big_plan:9.3f}  {'< 1.0':>6}")
        print(f"{'plan, small project (examples/minimal)':38}{small_plan:9.3f}  {'< 0.3':>6}")
        print(f"small plan / python floor: {small_plan / floor:.1f}x")


if __name__ == "__main__":
    main()
