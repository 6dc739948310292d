"""Front-end figures, each beside a reference measured in the same run:

1. the reader's lines/s on the self-written corpus (tests/corpus/), warm, beside the real
   Tova compiler's parser on the same files when a local checkout of it is at hand
   (TOVA_REAL_SRC, default /work/tova-lang-src; bun on PATH). Goal: >= 350,000 lines/s;
2. one ~2 MB file (the corpus repeated) read in one go, beside the real parser. Goal: < 0.35 s;
3. the pathological inputs of issue 9 point 8, each 1 MB: a result or a located error,
   in time linear in the size. Goal: each < 1 s;
4. reading + inference of a generated ~50,000-line project, and the start-up time of
   `tova deploy <env> --plan` (whole process) beside a bare `python -c pass`.
   Goals: the large project's plan < 1 s; a small project's plan < 0.3 s;
5. when that checkout is at hand: the reader and the compiler's parser on every Tova source
   of the language's own documentation and examples (issue 9's measurement basis; read from
   the checkout into a temporary folder, never part of this repository).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gen_project import generate  # noqa: E402

from tova.errors import TovaError  # noqa: E402
from tova.lang.reader import count_lines, parse_source  # noqa: E402

CORPUS = REPO / "tests" / "corpus"
REAL_SRC = Path(os.environ.get("TOVA_REAL_SRC", "/work/tova-lang-src"))
MB = 1024 * 1024


def best_of(fn: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def real_parser(files: list[Path], repeat: int) -> float | None:
    """Seconds for one warm pass of the real compiler's parser over files, or None."""
    if shutil.which("bun") is None or not (REAL_SRC / "src" / "parser").is_dir():
        return None
    proc = subprocess.run(["bun", str(REPO / "benchmarks" / "real_parser.mjs"), "time", str(repeat),
                           *map(str, files)], capture_output=True, text=True,
                          env={**os.environ, "TOVA_REAL_SRC": str(REAL_SRC)})
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout)["seconds"])


def corpus_files() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(CORPUS.rglob("*.tova"))]


def bench_corpus(files: list[tuple[Path, str]]) -> None:
    lines = sum(count_lines(t) for _, t in files)
    reps = 50

    def one_pass() -> None:
        for _ in range(reps):
            for path, text in files:
                parse_source(text, str(path))

    one_pass()  # warm
    ours = best_of(one_pass, 5) / reps
    real = real_parser([p for p, _ in files], 200)
    print(f"corpus: {len(files)} files, {lines} lines (tests/corpus)")
    print(f"  tova-deploy reader   {lines / ours:>12,.0f} lines/s   goal >= 350,000")
    if real is not None:
        print(f"  Tova compiler parser {lines / real:>12,.0f} lines/s   (reference, same files, warm)")
    else:
        print("  Tova compiler parser: not available here (set TOVA_REAL_SRC to a checkout)")


def bench_big_file(files: list[tuple[Path, str]], tmp: Path) -> None:
    chunks: list[str] = []
    size = 0
    while size < 2 * MB:
        for _, text in files:
            if not text.startswith("#!"):  # a shebang only on a file's first line
                chunks.append(text if text.endswith("\n") else text + "\n")
                size += len(chunks[-1].encode("utf-8"))
    text = "".join(chunks)
    path = tmp / "big.tova"
    path.write_text(text, encoding="utf-8")
    parse_source(text, str(path))  # warm
    ours = best_of(lambda: parse_source(text, str(path)), 3)
    real = real_parser([path], 5)
    mb = len(text.encode("utf-8")) / MB
    print(f"one {mb:.1f} MB file ({count_lines(text):,} lines, the corpus repeated)")
    print(f"  tova-deploy reader   {ours:9.3f} s   goal < 0.35")
    if real is not None:
        print(f"  Tova compiler parser {real:9.3f} s   (reference, same file, warm)")


def pathological() -> dict[str, str]:
    """Issue 9 point 8: inputs that took quadratic time or crashed, each ~1 MB."""
    n = MB
    deploy = 'deploy "p" { server: "s" domain: "d.com" }\n'
    return {
        "one line of `concurrent`": "x = 1 " + "concurrent " * (n // 11) + "\n" + deploy,
        'one line of `routes "…"`': "server {\n" + 'routes "/a" ' * (n // 12) + "\n}\n" + deploy,
        "one line of `source x`": "data {\n" + "source x " * (n // 9) + "\n}\n" + deploy,
        "nested markup (<a> deep)": "x = " + "<a>" * (n // 7) + "</a>" * (n // 7) + "\n" + deploy,
        "nested markup in {expr}": "x = " + "<a>{" * (n // 9) + "}</a>" * (n // 9) + "\n" + deploy,
        "arrays nested deep": 'deploy "p" { server: ' + "[" * (n // 2) + "]" * (n // 2) + " }\n",
        "nested block comments": "/*" * (n // 2) + "\n",
        "one long string": 'x = "' + "a{b}" * (n // 4) + '"\n' + deploy,
        "braces 250k deep": "fn f() " + "{" * (n // 4) + "}" * (n // 4) + "\n" + deploy,
    }


def bench_pathological(tmp: Path) -> None:
    print("pathological inputs, 1 MB each (issue 9 point 8)        seconds  goal  result")
    for name, text in pathological().items():
        t0 = time.perf_counter()
        try:
            parsed = parse_source(text, "p.tova")
            outcome = f"ok, {len(parsed.blocks)} blocks"
        except TovaError as err:
            outcome = f"error at {err.loc}" if err.loc else f"error: {err.message}"
        seconds = time.perf_counter() - t0
        print(f"  {name:52}{seconds:8.3f}  < 1.0  {outcome}")
    # a file that is not UTF-8: a located error too
    from tova.lang.sources import read_text

    bad = tmp / "latin1.tova"
    bad.write_bytes(b"x = 1\n" * (MB // 6) + b"s = '\xe9'\n")
    t0 = time.perf_counter()
    try:
        read_text(bad, "latin1.tova")
        outcome = "read?!"
    except TovaError as err:
        outcome = f"error at {err.loc}"
    print(f"  {'a 1 MB file that is not UTF-8':52}{time.perf_counter() - t0:8.3f}  < 1.0  {outcome}")


def reference_sources(tmp: Path) -> list[Path]:
    """The .tova files and ```tova blocks of the checkout's docs/ and examples/, one file
    each in tmp (none when there is no checkout)."""
    if not (REAL_SRC / "docs").is_dir():
        return []
    out = tmp / "reference"
    out.mkdir()
    texts = [p.read_text(encoding="utf-8") for p in sorted(REAL_SRC.glob("examples/**/*.tova"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted(REAL_SRC.glob("docs/**/*.tova"))]
    for md in sorted(REAL_SRC.glob("docs/**/*.md")):
        texts += re.findall(r"```tova\n(.*?)```", md.read_text(encoding="utf-8"), re.S)
    paths = []
    for i, text in enumerate(texts):
        path = out / f"{i:05d}.tova"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def bench_reference(tmp: Path) -> None:
    paths = reference_sources(tmp)
    if not paths:
        print("the language's own docs and examples: no checkout here (set TOVA_REAL_SRC)")
        return
    files = [(p, p.read_text(encoding="utf-8")) for p in paths]
    lines = sum(count_lines(t) for _, t in files)

    def one_pass() -> None:
        for path, text in files:
            try:
                parse_source(text, str(path))
            except TovaError:
                pass  # (timed all the same, as the compiler's parser is)

    one_pass()  # warm
    ours = best_of(one_pass, 5)
    real = real_parser(paths, 5)
    print(f"the language's own docs and examples: {len(files)} sources, {lines:,} lines "
          "(issue 9's measurement basis)")
    print(f"  tova-deploy reader   {lines / ours:>12,.0f} lines/s   goal >= 350,000")
    if real is not None:
        print(f"  Tova compiler parser {lines / real:>12,.0f} lines/s   (reference, same sources, warm)")


def median_seconds(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_project(tmp: Path) -> None:
    from tova.loader import load_manifest

    big = tmp / "big"
    lines = generate(big)
    load_manifest(big, "prod")  # warm imports
    read_s = best_of(lambda: load_manifest(big, "prod"), 5)
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


def main() -> None:
    files = corpus_files()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bench_corpus(files)
        bench_big_file(files, tmp)
        bench_pathological(tmp)
        bench_reference(tmp)
        if "--reader-only" not in sys.argv:
            bench_project(tmp)


if __name__ == "__main__":
    main()
