"""Read a project: the files tova.lang.sources says make the app, each parsed by the
reader, joined into one Program."""

from __future__ import annotations

from pathlib import Path

from tova.lang.program import Program
from tova.lang.reader import parse_source
from tova.lang.sources import app_sources, read_text


def read_project(root: str | Path) -> Program:
    src = app_sources(root)
    parsed = []
    for path in src.files:
        shown = _display_path(path, src.root)
        parsed.append(parse_source(read_text(path, shown), shown))
    toml = src.toml
    if toml.name is not None:
        name, name_from = toml.name, "tova.toml"
    else:
        name, name_from = src.root.name, "folder"
    return Program(
        project_name=name,
        name_from=name_from,
        app_base=toml.app_base,
        app_names=tuple(sorted(toml.apps.items())),
        root=str(src.root),
        source_dir=str(src.source_dir),
        files=tuple(str(p) for p in src.files),
        deploys=tuple(b for f in parsed for b in f.deploys),
        servers=tuple(b for f in parsed for b in f.servers),
        browsers=tuple(b for f in parsed for b in f.browsers),
        securities=tuple(b for f in parsed for b in f.securities),
        datas=tuple(b for f in parsed for b in f.datas),
        line_count=sum(f.line_count for f in parsed),
    )


def _display_path(path: Path, root: Path) -> str:
    """File names in error locations are relative to the project root when possible."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
