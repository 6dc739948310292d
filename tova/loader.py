"""The front door for every caller (CLI, plan, render, hook): project dir + env → Manifest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tova.config import DeployConfig, build_config
from tova.errors import ConfigError, Location, TovaError
from tova.lang.program import Program
from tova.manifest import Manifest


def read_program(project_dir: str | Path) -> Program:
    from tova.lang.project import read_project

    return read_project(Path(project_dir))


def load_config(program: Program, env: str, recorded_app: str | None = None) -> DeployConfig:
    """The environment's config. Its app name is decided on the developer's machine:
    tova.toml ([tova-deploy.apps] <env>, else [tova-deploy] name or [project] name), else
    the project folder's name. On the server, `recorded_app` is the name recorded with
    the repository at --setup-git; the server never derives one from its own folders."""
    explicit = dict(program.app_names).get(env)
    project = program.app_base or program.project_name
    if recorded_app is None:
        return build_config(program.deploys, env, project, app=explicit)
    decided_by_toml = explicit is not None or program.app_base is not None or program.name_from == "tova.toml"
    config = build_config(program.deploys, env, project, app=explicit if decided_by_toml else recorded_app)
    if config.app != recorded_app:
        raise ConfigError(
            f"this repository deploys app {recorded_app!r} but the project's tova.toml names it {config.app!r}",
            hint="push to the repository of that app (tova deploy <env> --setup-git sets it up)",
        )
    return config


def load_manifest(project_dir: str | Path, env: str, *, project_relative: bool = False,
                  recorded_app: str | None = None) -> Manifest:
    return load_project(project_dir, env, project_relative=project_relative, recorded_app=recorded_app)[2]


def load_project(project_dir: str | Path, env: str, *,
                 project_relative: bool = False,
                 recorded_app: str | None = None) -> tuple[Program, DeployConfig, Manifest]:
    """The program, the environment's validated deploy block and its manifest.
    project_relative: errors name files relative to the project (`src/app.tova:8:16`), not
    to the current directory; the server uses it for its temporary checkouts.
    recorded_app: the app name recorded with the server's repository (see load_config)."""
    from tova.infer import build_manifest

    with located_in(Path(project_dir), Path(project_dir) if project_relative else None):
        program = read_program(project_dir)
        config = load_config(program, env, recorded_app)
        return program, config, build_manifest(program, config, project_dir)


def shown_location(project_dir: Path, loc: Location) -> Location:
    """A project-relative location as the user can open it (relative to the current
    directory), the way errors show theirs."""
    if os.path.isabs(loc.file):
        return loc
    return Location(os.path.relpath(project_dir / loc.file), loc.line, loc.col)


@contextmanager
def located_in(project_dir: Path, base: Path | None = None) -> Iterator[None]:
    """Errors name files as the user can open them (relative to `base`, by default the
    current directory) and show the offending line under the message."""
    try:
        yield
    except TovaError as err:
        if err.loc is not None and not os.path.isabs(err.loc.file):
            full = project_dir / err.loc.file
            if err.source_line is None:
                try:
                    # "\n" only: the compiler counts lines that way (not U+2028, form feeds)
                    lines = full.read_text(encoding="utf-8").split("\n")
                    if 0 < err.loc.line <= len(lines):
                        err.source_line = lines[err.loc.line - 1]
                except (OSError, UnicodeDecodeError):
                    pass
            err.loc = Location(os.path.relpath(full, base), err.loc.line, err.loc.col)
        raise


def served_view(program: Program) -> dict[str, Any]:
    """What Caddy will serve of this project, for the plan (tova.served words it): the
    browser build, the files of public/, and the URL base the build's page loads its
    script below. Read here, at the edge, so that the plan stays a pure rendering."""
    from tova.lang.sources import read_toml

    root = Path(program.root)
    public = root / "public"
    files = sorted(str(p.relative_to(public)) for p in public.rglob("*") if p.is_file()) if public.is_dir() else []
    return {"browser": bool(program.browsers), "public": files, "base": read_toml(root).url_base}
