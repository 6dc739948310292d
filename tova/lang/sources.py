"""Which files make the app: ONE answer for the reader (plan, hook) and the server's build
step, read the way the production build reads them (docs/tova-compiler-facts.md):

- the source folder is tova.toml's `[project] entry` when set, else `src/` when it exists,
  else the project root;
- every `*.tova` file below it, sub-folders included, skipping names that start with `.`
  and `node_modules` folders; sorted per folder so that merging is deterministic.

Also reads the two tova.toml values the toolkit uses: `[project] name` and the app-name
override in `[tova-deploy]`, a section the compiler ignores."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tova.errors import Location, TovaError, TovaSyntaxError

TOML = "tova.toml"
DEPLOY_SECTION = "tova-deploy"


@dataclass(frozen=True)
class ProjectToml:
    """What the toolkit reads from tova.toml (all optional)."""

    name: str | None = None  # [project] name
    entry: str | None = None  # [project] entry
    app_base: str | None = None  # [tova-deploy] name: base of every environment's app name
    apps: dict[str, str] = field(default_factory=dict)  # [tova-deploy.apps] env = "app"
    url_base: str = "/"  # [deploy] base: the compiler's URL base path (index.html loads its script below it)


@dataclass(frozen=True)
class AppSources:
    root: Path
    source_dir: Path
    files: tuple[Path, ...]
    toml: ProjectToml


def read_toml(root: Path) -> ProjectToml:
    path = root / TOML
    if not path.is_file():
        return ProjectToml()
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise TovaError(
            f"{path}: malformed tova.toml: {e}",
            hint='fix the TOML syntax (strings need quotes: name = "myapp")',
        ) from None
    project = _table(data, "project", path)
    deploy = _table(data, DEPLOY_SECTION, path)
    apps = _table(deploy, "apps", path, f"{DEPLOY_SECTION}.apps")
    for env, app in apps.items():
        if not isinstance(app, str):
            raise TovaError(
                f"{path}: [{DEPLOY_SECTION}.apps] {env} must be a string",
                hint=f'for example: {env} = "myapp-{env}"',
            )
    return ProjectToml(
        name=_string(project, "name", path, "project"),
        entry=_string(project, "entry", path, "project"),
        app_base=_string(deploy, "name", path, DEPLOY_SECTION),
        apps=dict(apps),
        url_base=_string(_table(data, "deploy", path), "base", path, "deploy") or "/",
    )


def _table(data: dict[str, Any], key: str, path: Path, title: str | None = None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TovaError(
            f"{path}: [{title or key}] must be a table",
            hint=f"write it as a section: [{title or key}] on its own line, then key = value lines",
        )
    return value


def _string(table: dict[str, Any], key: str, path: Path, section: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TovaError(f"{path}: [{section}] {key} must be a string", hint=f'for example: {key} = "myapp"')
    # The compiler treats an empty value as unset (`entry || 'src'`).
    return value.strip() or None


def source_dir(root: Path, toml: ProjectToml | None = None) -> Path:
    """The folder the production build compiles (the server passes it to `tova build`)."""
    root = root.resolve()
    toml = read_toml(root) if toml is None else toml
    if toml.entry is not None:
        path = (root / toml.entry).resolve()
        if path != root and root not in path.parents:
            raise TovaError(
                f"{root / TOML}: [project] entry {toml.entry!r} is outside the project",
                hint="point entry at a folder inside the project, such as \"src\"",
            )
        if not path.is_dir():
            raise TovaError(
                f"{root / TOML}: [project] entry {toml.entry!r} is not a directory",
                hint="create it, or point entry at the folder holding your .tova files",
            )
        return path
    src = root / "src"
    return src if src.is_dir() else root


def tova_files(folder: Path, root: Path | None = None) -> list[Path]:
    """Every .tova file below folder, as the compiler's file walk finds them. A symlink
    that leads out of `root` (the project) is refused: on the server the project is a
    pushed checkout, and reading (and quoting in errors) a file outside it would leak it."""
    root = (root or folder).resolve()
    out: list[Path] = []
    seen: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in seen:  # a symlink loop would never end
            continue
        seen.add(real)
        try:
            names = sorted(os.listdir(current))
        except OSError as e:
            raise TovaError(f"cannot list {current}: {e.strerror}") from None
        subdirs = []
        for name in names:
            if name.startswith(".") or name == "node_modules":
                continue
            path = current / name
            if path.is_symlink() and not _inside(path.resolve(), root):
                if path.is_dir() or name.endswith(".tova"):
                    raise TovaError(
                        f"{path.relative_to(root) if _inside(path, root) else path} is a symlink that "
                        "points outside the project",
                        hint="copy what it points to into the project",
                    )
                continue
            if path.is_dir():
                subdirs.append(path)
            elif name.endswith(".tova") and path.is_file():
                out.append(path)
        stack.extend(reversed(subdirs))
    return sorted(out, key=lambda p: p.relative_to(folder).parts)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def app_sources(root: str | Path) -> AppSources:
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise TovaError(
            f"project directory not found: {root}",
            hint="run this inside a Tova project, or pass its directory",
        )
    toml = read_toml(root_path)
    folder = source_dir(root_path, toml)
    files = tova_files(folder, root_path)
    if not files:
        raise TovaError(
            f"no .tova files in {folder}",
            hint="put your app's .tova files in src/ (or set [project] entry in tova.toml)",
        )
    return AppSources(root=root_path, source_dir=folder, files=tuple(files), toml=toml)


def read_text(path: Path, shown: str | None = None) -> str:
    """The file's text; a file that is not UTF-8 gets a located error (the compiler reads
    sources as UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TovaError(f"cannot read {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line_end = data.find(b"\n", e.start)
        raw = data[line_start : line_end if line_end != -1 else len(data)]
        prefix = data[line_start : e.start].decode("utf-8", errors="replace")
        raise TovaSyntaxError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x})",
            hint="save the file as UTF-8",
            loc=Location(shown or str(path), data.count(b"\n", 0, e.start) + 1, len(prefix) + 1),
            source_line=raw.decode("utf-8", errors="replace"),
        ) from None
