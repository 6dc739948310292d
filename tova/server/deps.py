"""npm dependencies of a release, installed at build time, never at run time.

What the server needs: the packages the compiled server imports (the database drivers
`postgres` and `mysql2` stay unbundled imports), from the project's tova.toml `[npm]`
(what `tova install` turns into a package.json) or its own package.json; a lockfile next
to it (bun.lock, bun.lockb or package-lock.json) is honoured with a frozen install. Each
dependency set is installed once into `deps/<key>/` (key: a hash of package.json, lockfile
and Bun version) and releases link their `node_modules` there, so a code-only deploy
reuses it.

The set is installed BEFORE the compiler runs: a browser block's npm imports are bundled at
build time and must resolve then. The build user cannot read the sealed install (the app's
group), so each set also has a read-only copy for the build, `deps/<key>.build/`, root's and
the build user's group, made once per set; the build sandbox binds only that copy."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tova.errors import DeployError
from tova.layout import AppLayout

# Imports the compiler leaves in the server bundle for its database drivers, and the
# version range installed when the project does not name one.
DRIVER_PACKAGES = {"postgres": "^3.4.5", "mysql2": "^3.11.0"}
# Bun's own, and npm's (which `bun install` reads and, frozen, holds to just the same).
LOCKFILES = ("bun.lock", "bun.lockb", "package-lock.json")
COMPLETE = ".complete"  # written last: a folder without it is a half-made install
BUILD_SUFFIX = ".build"  # deps/<key>.build: the set's copy the compiler may read
# The driver package each database engine's generated server code imports.
ENGINE_PACKAGES = {"postgres": "postgres", "mysql": "mysql2"}
_IMPORT = re.compile(r"""^\s*import\s+(?:[\w*${}\s,]+\s+from\s+)?["']([^"'./][^"']*)["']""", re.M)
_BUILTIN_PREFIXES = ("node:", "bun:", "bun")


@dataclass(frozen=True)
class DepSpec:
    package_json: str
    lockfile: tuple[str, bytes] | None  # (name, content)
    packages: tuple[str, ...]  # the direct dependencies, for the record
    key: str = field(default="")


def imported_packages(bundle: str) -> list[str]:
    """npm packages a server bundle imports statically (builtins left out)."""
    names = []
    for spec in _IMPORT.findall(bundle):
        if spec.startswith(_BUILTIN_PREFIXES):
            continue
        parts = spec.split("/")
        name = "/".join(parts[:2]) if spec.startswith("@") else parts[0]
        if name not in names and name not in _NODE_BUILTINS:
            names.append(name)
    return names


def server_imports(build_out: Path) -> list[str]:
    """npm packages the built server bundle imports."""
    bundle = "".join(p.read_text(errors="replace") for p in sorted(build_out.glob("server.*.js"))
                     if not p.name.endswith(".min.js"))
    return imported_packages(bundle)


def engine_packages(engines: list[str]) -> list[str]:
    """The driver packages the compiled server will import for these database engines."""
    return [ENGINE_PACKAGES[e] for e in engines if e in ENGINE_PACKAGES]


def dependency_spec(project: Path, imports: list[str], app: str, bun_version: str) -> DepSpec | None:
    """What to install for a server importing `imports`; None when it imports nothing from
    npm and the project declares no dependencies."""
    declared = _declared(project)
    lock = next(((n, (project / n).read_bytes()) for n in LOCKFILES if (project / n).is_file()), None)
    if declared is None or lock is None or not (project / "package.json").is_file():
        lock = None  # a lockfile only makes sense with the package.json it was made from
    else:
        # The lockfile holds package.json's dependencies: those are what gets installed.
        listed = _package_json_deps(project)
        stale = sorted(set(declared) - set(listed))
        if stale:
            raise DeployError(
                f"tova.toml's [npm] lists {', '.join(stale)}, which package.json (and so the lockfile) does not",
                hint="run `tova install` and commit package.json and the lockfile")
        declared = listed
    deps = dict(declared or {})
    for name in imports:
        if name in deps:
            continue
        if lock is not None:
            raise DeployError(
                f"the compiled server imports the npm package {name!r}, which package.json does not list",
                hint=f"add it (bun add {name}) and commit package.json and the lockfile")
        if name not in DRIVER_PACKAGES:
            raise DeployError(
                f"the compiled server imports the npm package {name!r}, which the project does not declare",
                hint=f'add it to tova.toml\'s [npm] section ({name} = "^x.y") or to package.json')
        deps[name] = DRIVER_PACKAGES[name]
    if not deps:
        return None
    if lock is not None:
        package_json = (project / "package.json").read_text()
    else:
        package_json = json.dumps({"name": app, "private": True, "dependencies": dict(sorted(deps.items()))},
                                  indent=2) + "\n"
    digest = hashlib.sha256()
    for part in (bun_version.encode(), package_json.encode(), *(lock if lock else (b"", b""))):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return DepSpec(package_json, lock, tuple(sorted(deps)), digest.hexdigest()[:16])


def declares_any(project: Path) -> bool:
    """Whether the project lists npm dependencies of its own (tova.toml [npm] or package.json)."""
    return bool(_declared(project))


def _declared(project: Path) -> dict[str, str] | None:
    """tova.toml [npm] (without [npm.dev]), else package.json dependencies; None: neither."""
    toml = project / "tova.toml"
    if toml.is_file():
        try:
            npm = tomllib.loads(toml.read_text()).get("npm")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DeployError(f"tova.toml: {exc}", hint="fix the TOML syntax") from exc
        if isinstance(npm, dict) and any(not isinstance(v, dict) for v in npm.values()):
            return {k: str(v) for k, v in npm.items() if not isinstance(v, dict)}
    if (project / "package.json").is_file():
        return _package_json_deps(project)
    return None


def _package_json_deps(project: Path) -> dict[str, str]:
    try:
        data = json.loads((project / "package.json").read_text())
    except ValueError as exc:
        raise DeployError(f"package.json: {exc}", hint="fix the JSON syntax") from exc
    deps = data.get("dependencies") if isinstance(data, dict) else None
    return {k: str(v) for k, v in deps.items()} if isinstance(deps, dict) else {}


def install(spec: DepSpec, app: AppLayout, bun: str | None, run: Callable[[list[str], Path], int],
            work: Path, prepare: Callable[[Path], None] = lambda _: None,
            seal: Callable[[Path], None] = lambda _: None) -> tuple[Path, dict[str, str], bool]:
    """The folder holding node_modules for spec (installed now unless already there), the
    installed versions of the direct dependencies, and whether it was reused.

    The install runs in `work` (a new directory on the same filesystem, handed to the
    installer's user by `prepare`); `seal` makes the finished folder root's before it
    moves into deps/."""
    target = app.deps / spec.key
    if (target / COMPLETE).is_file():
        return target, _versions(target, spec.packages), True
    if bun is None:
        raise DeployError("Bun is not installed, so the npm dependencies cannot be installed",
                          hint="provisioning installs it; run `tova deploy <env>` again")
    app.deps.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    (work / "package.json").write_text(spec.package_json)
    # Copies, not hard links into the installer's cache (which is thrown away).
    argv = [bun, "install", "--production", "--ignore-scripts", "--no-progress", "--backend=copyfile"]
    if spec.lockfile is not None:
        (work / spec.lockfile[0]).write_bytes(spec.lockfile[1])
        argv.append("--frozen-lockfile")
    for path in (work, *work.iterdir()):
        prepare(path)
    rc = run(argv, work)
    if rc != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise DeployError(f"installing the npm dependencies failed (bun install exit status {rc}); "
                          "nothing was deployed", hint="fix the dependency named above and push again")
    seal(work)
    versions = _versions(work, spec.packages)
    (work / COMPLETE).write_text(json.dumps(versions, sort_keys=True) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target, versions, False


def _versions(folder: Path, packages: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = str(json.loads((folder / "node_modules" / name / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            out[name] = "?"
    return out


def build_copy(target: Path, seal: Callable[[Path], None]) -> Path:
    """The node_modules of the installed set `target` that the build may read: a copy
    (made once per set, `seal` giving it to root and the build user's group)."""
    copy = target.with_name(target.name + BUILD_SUFFIX)
    if (copy / COMPLETE).is_file():
        return copy / "node_modules"
    shutil.rmtree(copy, ignore_errors=True)
    work = target.with_name(target.name + BUILD_SUFFIX + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if (target / "node_modules").is_dir():  # `bun install` of nothing may make none
        shutil.copytree(target / "node_modules", work / "node_modules", symlinks=True)
    else:
        (work / "node_modules").mkdir()
    seal(work)
    (work / COMPLETE).write_text("")
    work.rename(copy)
    return copy / "node_modules"


def link(release: Path, target: Path) -> None:
    """release/node_modules → the shared install, relative so the app directory can move."""
    os.symlink(os.path.relpath(target / "node_modules", release), release / "node_modules")


def prune(app: AppLayout, keep_keys: set[str]) -> None:
    """Drop dependency sets no release uses any more (and half-made installs)."""
    if not app.deps.is_dir():
        return
    for entry in app.deps.iterdir():
        if entry.name.removesuffix(BUILD_SUFFIX) not in keep_keys:
            shutil.rmtree(entry, ignore_errors=True)


_NODE_BUILTINS = frozenset({
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console", "constants", "crypto",
    "dgram", "dns", "domain", "events", "fs", "fs/promises", "http", "http2", "https", "inspector",
    "module", "net", "os", "path", "perf_hooks", "process", "punycode", "querystring", "readline",
    "repl", "stream", "string_decoder", "timers", "tls", "tty", "url", "util", "v8", "vm",
    "worker_threads", "zlib",
})
