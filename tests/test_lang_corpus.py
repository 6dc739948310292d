"""The self-written corpus (tests/corpus/): every file's top-level blocks as the real
compiler's parser reports them (recorded in each project's expected.json), and the plan
facts of every deploy environment. Components with markup on new lines, fragments,
control flow in markup, every kind of string, regexes, route groups, and projects whose
code lives in sub-folders (issue 9)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tova.lang.project import read_project
from tova.lang.reader import parse_source
from tova.lang.sources import app_sources
from tova.loader import load_manifest
from tova.plan import external_databases

CORPUS = Path(__file__).resolve().parent / "corpus"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())
REPO = CORPUS.parent.parent


def expected(project: str) -> dict:
    return json.loads((CORPUS / project / "expected.json").read_text())


def blocks_of(path: Path, shown: str) -> list[list[object]]:
    parsed = parse_source(path.read_text(encoding="utf-8"), shown)
    return [[b.kind, b.name, b.loc.line] for b in parsed.blocks]


def test_the_corpus_is_varied():
    assert len(PROJECTS) >= 5
    files = [f for p in PROJECTS for f in expected(p)["files"]]
    assert sum("/" in f.removeprefix("src/").removeprefix("app/") for f in files) >= 4  # sub-folders
    text = "\n".join((CORPUS / p / f).read_text() for p in PROJECTS for f in expected(p)["files"])
    for shape in ("component", "<>", "for ", "match ", "style {", '"""', 'r"', "routes ", "sse ", "ws {"):
        assert shape in text, shape


@pytest.mark.parametrize("project", PROJECTS)
def test_same_files_and_blocks_as_the_compiler(project):
    root = CORPUS / project
    want = expected(project)["files"]
    src = app_sources(root)
    assert sorted(str(p.relative_to(root)) for p in src.files) == sorted(want)
    for rel, blocks in want.items():
        assert blocks_of(root / rel, rel) == blocks, rel
    program = read_project(root)
    assert program.line_count == sum(len((root / f).read_text().splitlines()) for f in want)


@pytest.mark.parametrize("project", PROJECTS)
def test_plan_facts(project):
    root = CORPUS / project
    for env, facts in expected(project)["plans"].items():
        m = load_manifest(root, env)
        assert m.app == facts["app"]
        assert [d.engine for d in m.databases] == facts["databases"], env
        assert m.proxy.websocket == facts["websocket"]
        assert list(m.proxy.sse_paths) == facts["sse_paths"]
        assert m.proxy.static == facts["static"]
        assert external_databases(m) == facts.get("external", [])
        if "env" in facts:
            assert dict(m.env_vars) == facts["env"]
        if "secrets" in facts:
            assert list(m.secrets.required) == facts["secrets"]
        if "data_files" in facts:
            assert list(m.data_files) == facts["data_files"]


REAL_SRC = Path(os.environ.get("TOVA_REAL_SRC", "/work/tova-lang-src"))


@pytest.mark.skipif(shutil.which("bun") is None or not (REAL_SRC / "src" / "parser").is_dir(),
                    reason="needs a local checkout of the real Tova compiler (TOVA_REAL_SRC) and bun")
def test_expected_blocks_are_the_real_parsers():
    """Where the real compiler is at hand, expected.json is checked against it."""
    files = sorted(str(p) for p in CORPUS.rglob("*.tova"))
    out = subprocess.run(["bun", str(REPO / "benchmarks" / "real_parser.mjs"), "blocks", *files],
                         capture_output=True, text=True, check=True, env={**os.environ, "TOVA_REAL_SRC": str(REAL_SRC)})
    real = json.loads(out.stdout)
    for project in PROJECTS:
        for rel, blocks in expected(project)["files"].items():
            assert real[str(CORPUS / project / rel)] == blocks, rel
