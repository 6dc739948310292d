"""The import graph: no cycle among tova's modules, and the pure core (everything left of
the server steps in docs/architecture.md) imports neither tova.server nor tova.client."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tova"
# Modules that run no subprocess and touch no server: reading, checking, inferring,
# rendering, naming, paths. `tova.cli`, `tova.hook` and the two subpackages are the edges.
PURE_CORE = (
    "tova.lang", "tova.config", "tova.infer", "tova.manifest", "tova.render", "tova.quoting",
    "tova.naming", "tova.layout", "tova.errors", "tova.settings", "tova.plan", "tova.loader",
    "tova.templating", "tova.units", "tova.fingerprint",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """tova modules `path` imports, at module level or inside functions."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from tova.server import x`
    return {m for m in found if m == "tova" or m.startswith("tova.")}


@lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "tova":  # the package itself only carries __version__
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(m for m in _graph() if _in(m, PURE_CORE)))
def test_pure_core_imports_no_edge(module):
    edges = sorted(m for m in _graph()[module] if _in(m, ("tova.server", "tova.client")))
    assert edges == [], f"{module} imports {edges}"


def test_the_lists_above_name_real_modules():
    graph = _graph()
    for prefix in PURE_CORE:
        assert any(_in(m, (prefix,)) for m in graph), prefix
