"""Project discovery: which directory and which .tova files make up an app, read the
way the Tova compiler reads them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tova.errors import TovaError
from tova.lang.program import Program
from tova.lang.reader import parse_source


def read_project(root: str | Path) -> Program:
    """Read every top-level `*.tova` file of the project's source directory (sorted,
    dotfiles skipped, not recursive) into one Program."""
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise TovaError(
            f"project directory not found: {root}",
            hint="run this inside a Tova project, or pass its directory",
        )
    project = _project_table(root_path)
    name = project.get("name")
    if not isinstance(name, str) or not name.strip():
        name = root_path.name
    source_dir = _source_dir(root_path, project)
    files = sorted(
        p for p in source_dir.iterdir()
        if p.suffix == ".tova" and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise TovaError(
            f"no .tova files in {source_dir}",
            hint="put your app's .tova files in src/ (or set [project] entry in tova.toml)",
        )
    parsed = [parse_source(_read_text(p), _display_path(p, root_path)) for p in files]
    return Program(
        project_name=name.strip(),
        root=str(root_path),
        source_dir=str(source_dir),
        files=tuple(str(p) for p in files),
        deploys=tuple(b for f in parsed for b in f.deploys),
        servers=tuple(b for f in parsed for b in f.servers),
        browsers=tuple(b for f in parsed for b in f.browsers),
        securities=tuple(b for f in parsed for b in f.securities),
        datas=tuple(b for f in parsed for b in f.datas),
        line_count=sum(f.line_count for f in parsed),
    )


def _project_table(root: Path) -> dict:
    toml_path = root / "tova.toml"
    if not toml_path.is_file():
        return {}
    try:
        data = tomllib.loads(_read_text(toml_path))
    except tomllib.TOMLDecodeError as e:
        raise TovaError(
            f"{toml_path}: malformed tova.toml: {e}",
            hint="fix the TOML syntax (strings need quotes: name = \"myapp\")",
        ) from None
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise TovaError(
            f"{toml_path}: [project] must be a table",
            hint='write it as a section: [project] then name = "myapp"',
        )
    return project


def _source_dir(root: Path, project: dict) -> Path:
    entry = project.get("entry")
    if entry is not None:
        if not isinstance(entry, str) or not entry.strip():
            raise TovaError(
                f"{root / 'tova.toml'}: [project] entry must be a directory name",
                hint='for example: entry = "src"',
            )
        path = (root / entry).resolve()
        if not path.is_dir():
            raise TovaError(
                f"{root / 'tova.toml'}: [project] entry {entry!r} is not a directory",
                hint="create it, or point entry at the directory holding your .tova files",
            )
        return path
    src = root / "src"
    return src if src.is_dir() else root


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TovaError(f"{path}: not UTF-8 text", hint="save the file as UTF-8") from None
    except OSError as e:
        raise TovaError(f"cannot read {path}: {e.strerror}") from None


def _display_path(path: Path, root: Path) -> str:
    """File names in error locations are relative to the project root when possible."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
