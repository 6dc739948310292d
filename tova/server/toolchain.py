"""The toolchain a build needs (Bun and the Tova compiler), checked before every build
and installed when missing, so that a fresh server's first build can run.

The compiler is the `compiler` setting, or (when that is empty) the one tova-deploy keeps
at <root>/compiler/tova: put there by `compiler_install` (with TOVA_VERSION, online) or
uploaded by `tova deploy <env> --setup-git --compiler PATH` (offline). The version it
must have is the developer's (recorded at --setup-git in <root>/compiler/version)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tova.errors import DeployError, TovaError
from tova.layout import Layout
from tova.server.atomic import write_atomic
from tova.server.safetar import extract_safely
from tova.server.tooling import bun_binary, run_tool
from tova.settings import ServerSettings, compiler_argv

VERSION_RE = re.compile(r"Tova v?(\d[0-9A-Za-z.+-]*)")


def compiler_dir(settings: ServerSettings) -> Path:
    return Layout.of(settings.root).compiler_dir


def parse_version(text: str) -> str | None:
    m = VERSION_RE.search(text)
    return m.group(1) if m else None


def _answer(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class Toolchain:
    bun: str | None  # the version found
    compiler: str | None
    problems: tuple[str, ...]


def inspect(settings: ServerSettings) -> Toolchain:
    problems = []
    bun = bun_binary()
    bun_found = (_answer([bun, "--version"]) or "").strip() or None if bun else None
    if bun_found != settings.bun_version:
        problems.append(f"Bun {settings.bun_version} is not installed" + (f" (found {bun_found})" if bun_found else ""))
    argv = compiler_argv(settings)
    compiler_found = parse_version(_answer([*argv, "--version"]) or "")
    if compiler_found is None:
        problems.append(f"the Tova compiler ({argv[0]}) does not answer `--version`")
    elif settings.compiler_version and compiler_found != settings.compiler_version:
        problems.append(f"the server's Tova compiler is {compiler_found}, the developer's {settings.compiler_version}")
    return Toolchain(bun_found, compiler_found, tuple(problems))


CHECKED = "checked.json"  # in compiler_dir: the last check that found no problem


def _stamp(settings: ServerSettings) -> str | None:
    """What a check's answer depends on: the versions it expects, the compiler's command,
    and each file it runs (device, inode, size, times: replacing or rewriting one changes
    them). None when one cannot be found (then the check itself says what is wrong)."""
    argv = compiler_argv(settings)
    parts = [settings.bun_version, settings.compiler_version, json.dumps(argv)]
    for path in (bun_binary(), shutil.which(argv[0]), *(a for a in argv[1:] if os.path.isfile(a))):
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        parts.append(f"{path} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}")
    return "\n".join(parts)


def _checked(settings: ServerSettings, stamp: str | None) -> Toolchain | None:
    """The last good check's answer while nothing it depends on changed (running Bun and
    the compiler for their versions costs ~50 ms of every build)."""
    if stamp is None:
        return None
    try:
        data = json.loads((compiler_dir(settings) / CHECKED).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("stamp") != stamp:
        return None
    return Toolchain(data.get("bun"), data.get("compiler"), ())


def upload_hint(env: str) -> str:
    """The remedy for a missing compiler, naming the environment when the server knows it
    (a deploy, the pre-receive check); `ENV` otherwise, which the client replaces."""
    return f"upload the compiler with `tova deploy {env} --setup-git --compiler PATH`"


def ensure(settings: ServerSettings, passthrough: Callable[[str], None], env: str = "ENV") -> Toolchain:
    """Check; when something is missing or of another version, run toolchain.sh and check
    again. DeployError (before anything is built or switched) when it stays wrong. A check
    that found no problem holds until a file it ran or a version it expects changes."""
    stamp = _stamp(settings)
    if (known := _checked(settings, stamp)) is not None:
        return known
    found = inspect(settings)
    if not found.problems:
        _record_checked(settings, stamp, found)
        return found
    passthrough("Toolchain: " + "; ".join(found.problems) + "\n")
    from tova.render import render_toolchain  # jinja2: ~20 ms that a build with a known toolchain skips
    directory = compiler_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "toolchain.sh"
    write_atomic(script, render_toolchain(settings), mode=0o700)
    rc = run_tool(["bash", str(script)], Path("/"), passthrough)
    found = inspect(settings)
    if rc != 0 or found.problems:
        raise DeployError(
            "the build toolchain is not ready: " + "; ".join(found.problems or (f"toolchain.sh exit status {rc}",)),
            hint=f"set compiler_install in config.toml (online), or {upload_hint(env)}")
    _record_checked(settings, _stamp(settings), found)
    return found


def _record_checked(settings: ServerSettings, stamp: str | None, found: Toolchain) -> None:
    if stamp is None:
        return
    try:
        write_atomic(compiler_dir(settings) / CHECKED,
                     json.dumps({"stamp": stamp, "bun": found.bun, "compiler": found.compiler}) + "\n")
    except OSError:
        pass  # only a cache: the next build checks again


def record_version(settings: ServerSettings, version: str) -> None:
    """The developer's compiler version: what every build on this server must use."""
    if not re.fullmatch(r"\d[0-9A-Za-z.+-]{0,40}", version):
        raise TovaError(f"invalid compiler version {version!r}", hint="e.g. 0.11.26")
    directory = compiler_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "version", version + "\n", mode=0o644)


def install_upload(settings: ServerSettings, archive: bytes, entry: str) -> None:
    """An uploaded compiler (a tar of one binary or of a directory) becomes <root>/compiler/
    tova, a link to ENTRY inside it (run once Bun is there: a compiler run from source is a
    Bun program)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", entry) or ".." in entry.split("/"):
        raise TovaError(f"invalid compiler entry {entry!r}", hint="a relative path such as bin/tova")
    directory = compiler_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    new = directory / f".upload-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            extract_safely(tar, new)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise TovaError(f"the uploaded compiler is not a readable archive: {exc}",
                        hint="upload a Linux build of the compiler (a binary or a directory)") from exc
    target = new / entry
    if not target.is_file():
        shutil.rmtree(new, ignore_errors=True)
        raise TovaError(f"the uploaded compiler has no {entry}", hint="point --compiler at the compiler's binary")
    target.chmod(target.stat().st_mode | 0o755)
    for path in [new, *new.rglob("*")]:  # root-owned, readable by the build's user
        if not path.is_symlink():
            os.chown(path, 0, 0) if os.geteuid() == 0 else None
    final = directory / "uploaded"
    old = directory / f".old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    link = directory / "tova"
    tmp = directory / f".tova-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(f"uploaded/{entry}", tmp)
    tmp.replace(link)

