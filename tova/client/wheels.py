"""Wheels of the client's own tova-deploy (and, for --offline, of its dependencies), so the
server runs exactly the toolkit version the client has."""

from __future__ import annotations

import email.parser
import json
import re
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import tova
from tova.client.ssh import run_local
from tova.errors import TovaError

DIST = "tova-deploy"
_WHEEL_PREFIX = "tova_deploy-"
# What a source tree needs to build the wheel; copied so the build leaves no
# build/ or *.egg-info behind in the user's tree.
_SOURCE_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE", "MANIFEST.in")


def source_tree() -> Path | None:
    """The tova-deploy source this client runs from: a checkout, or the directory an
    installed distribution was installed from (pip's direct_url.json)."""
    here = Path(tova.__file__).resolve().parent.parent
    if _is_source(here):
        return here
    try:
        direct = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        url = json.loads(direct).get("url", "")
        if url.startswith("file://"):
            p = Path(url[len("file://") :])
            if _is_source(p):
                return p
    return None


def _is_source(p: Path) -> bool:
    py = p / "pyproject.toml"
    return py.is_file() and (p / "tova" / "__init__.py").is_file() and re.search(
        r'^name\s*=\s*"tova-deploy"', py.read_text(), re.M
    ) is not None


def own_wheel(out: Path) -> Path:
    """A wheel of this very version: a prebuilt one from the source tree's dist/, one built
    with `pip wheel --no-deps` from a copy of the source tree, or, for a client installed
    without its source, one rebuilt from the installed package (which carries its own
    pyproject.toml as tova/data/pyproject.toml)."""
    version = tova.__version__
    src = source_tree()
    if src is not None:
        candidates = sorted((src / "dist").glob(f"{_WHEEL_PREFIX}{version}-*.whl"))
        if candidates and not _newer_sources(src, candidates[-1]):
            dest = out / candidates[-1].name
            shutil.copyfile(candidates[-1], dest)
            return dest
    copy = out / "src"
    copy.mkdir()
    if src is not None:
        for name in _SOURCE_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, copy / name)
        package = src / "tova"
    else:
        package = Path(tova.__file__).resolve().parent
        pyproject = package / "data" / "pyproject.toml"
        if not pyproject.is_file():
            raise TovaError(
                f"cannot find the source of tova-deploy {version} to install it on the server",
                hint="install tova-deploy from a source checkout (pip install PATH) or put its wheel in dist/",
            )
        shutil.copyfile(pyproject, copy / "pyproject.toml")
        (copy / "README.md").write_text("tova-deploy\n")  # pyproject names a readme
    shutil.copytree(package, copy / "tova", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return _build(copy, out, version)


def _build(tree: Path, out: Path, version: str) -> Path:
    res = run_local(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(tree),
        ]
    )
    shutil.rmtree(tree, ignore_errors=True)
    built = sorted(out.glob(f"{_WHEEL_PREFIX}{version}-*.whl"))
    if res.exit_code != 0 or not built:
        raise TovaError(
            f"building the tova-deploy wheel failed: {res.err.strip()[-300:]}",
            hint="run `pip wheel --no-deps .` in the tova-deploy checkout to see why",
        )
    return built[-1]


def _newer_sources(src: Path, wheel: Path) -> bool:
    stamp = wheel.stat().st_mtime
    # Templates, the grammar and server scripts count as much as Python files.
    return any(p.stat().st_mtime > stamp for p in (src / "tova").rglob("*") if p.is_file())


def requirements(wheel: Path) -> list[str]:
    """Requires-Dist of a wheel, without extras-only requirements."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(name).decode())
    return [r for r in msg.get_all("Requires-Dist") or [] if "extra ==" not in r]


def platform_tags(machine: str, libc: str) -> list[str]:
    """pip --platform values a server with this CPU and glibc can install."""
    m = re.match(r"^(\d+)\.(\d+)", libc or "")
    tags = [f"manylinux2014_{machine}"]
    if m and m.group(1) == "2":
        tags += [f"manylinux_2_{n}_{machine}" for n in range(17, int(m.group(2)) + 1)]
    return tags


def dependency_wheels(wheel: Path, out: Path, *, pyver: str, machine: str, libc: str) -> list[Path]:
    """Download wheels of the toolkit's dependencies for the *server's* Python and
    platform (which may differ from ours)."""
    reqs = requirements(wheel)
    if not reqs:
        return []
    args = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "-q",
        "--only-binary=:all:",
        "-d",
        str(out),
    ]
    if pyver:
        args += ["--python-version", pyver]
    if machine:
        for tag in platform_tags(machine, libc):
            args += ["--platform", tag]
    res = run_local([*args, *reqs])
    if res.exit_code != 0:
        raise TovaError(
            f"downloading the toolkit's dependencies for --offline failed: {res.err.strip()[-300:]}",
            hint="check your connection to the package index, or run without --offline",
        )
    return sorted(p for p in out.glob("*.whl") if p != wheel)
