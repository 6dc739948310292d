"""`tova deploy <env> --setup-git`: make a server ready for `git push <env> <branch>`.

python3 + venv (apt when missing) → the toolkit venv at <root>/toolkit with the client's
own version (wheels uploaded over ssh) → /usr/local/bin/tova-release → `tova-release init`
→ the local git remote named after the environment. Every step checks first, so a second
run reports everything in place."""

from __future__ import annotations

import io
import os
import posixpath
import shlex
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tova
from tova.client import failures, localgit, wheels
from tova.client.remote import Probe, Server
from tova.client.scripts import server_script
from tova.errors import TovaError
from tova.fingerprint import package_fingerprint
from tova.manifest import Manifest
from tova.progress import WARN, Out, client_steps, heading, note, say, step


@dataclass
class SetupResult:
    repo_created: bool = False
    hook_installed: bool = False
    lines: list[str] = field(default_factory=list)


def ensure_python(server: Server, probe: Probe) -> Probe:
    if probe.python3 and probe.venv and probe.git:
        return probe
    if not probe.apt:
        raise failures.python_missing(server.display, "apt-get is not available")
    for argv, what in (
        (["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"], "apt-get update"),
        (
            [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-q",
                "python3",
                "python3-venv",
                "git",
            ],
            "apt-get install python3 python3-venv git",
        ),
    ):
        res = server.run(argv, root_env=False)
        if res.exit_code != 0:
            raise failures.python_missing(server.display, f"{what} failed: {res.err.strip().splitlines()[-1:] or ''}")
    probe = server.probe(refresh=True)
    if not (probe.python3 and probe.venv and probe.git):
        raise failures.python_missing(server.display, "python3, venv or git still missing after apt-get install")
    return probe


def installed_version(server: Server, probe: Probe) -> tuple[str, str] | None:
    """(version, fingerprint) of the server's toolkit; None when missing or broken."""
    if not probe.toolkit:
        return None
    res = server.release(["version", "--json"])
    if res.exit_code != 0:
        return None  # a broken toolkit venv: reinstall it
    try:
        import json

        data = json.loads(res.out)
        return str(data["version"]), str(data.get("fingerprint", ""))
    except (ValueError, KeyError, TypeError):
        return None


def install_toolkit(server: Server, probe: Probe, *, offline: bool, same_version: bool = False) -> None:
    """Upload the client's wheel (and, offline, its dependencies') and pip-install it into
    <root>/toolkit. Dependencies come from the package index unless offline."""
    with tempfile.TemporaryDirectory(prefix="tova-wheels-") as tmp:
        out = Path(tmp)
        own = wheels.own_wheel(out)
        files = [own]
        if offline:
            files += wheels.dependency_wheels(own, out, pyver=probe.pyver, machine=probe.machine, libc=probe.libc)
        remote_dir = server.run_checked(["mktemp", "-d", "/tmp/tova-toolkit.XXXXXX"], "mktemp").out.strip()
        try:
            for f in files:
                dest = posixpath.join(remote_dir, f.name)
                server.run_checked(["sh", "-c", 'cat > "$1"', "sh", dest], f"uploading {f.name}", stdin=f.read_bytes())
            toolkit = server.renv.toolkit
            server.run_checked(["mkdir", "-p", server.renv.root], "creating the toolkit root")
            server.run_checked(
                ["sh", "-c", server_script("make-venv.sh"), "sh", "python3", toolkit], "creating the toolkit venv"
            )
            pip = [
                str(server.renv.layout.toolkit_python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--upgrade",
            ]
            if offline:
                pip += ["--no-index", "--find-links", remote_dir]
            if same_version:  # pip keeps an installed version as it is unless forced
                pip += ["--force-reinstall", "--no-deps"]
            server.run_checked([*pip, posixpath.join(remote_dir, own.name)], "installing the toolkit with pip")
        finally:
            server.run(["rm", "-rf", "--", remote_dir], root_env=False)


def link_toolkit(server: Server) -> bool:
    link = posixpath.join(server.renv.link_dir, "tova-release")
    res = server.run_checked(
        ["sh", "-c", server_script("link-toolkit.sh"), "sh", server.renv.tova_release, link], "linking tova-release"
    )
    return res.out.strip() == "linked"


def receive_pack(server: Server) -> str | None:
    """The remote command git should run for a push, when plain `git-receive-pack` would
    not do: not root (sudo), or a non-default root/system the hook must see."""
    argv = server.privileged([*server.renv.prefix(), "git-receive-pack"])
    return None if argv == ["git-receive-pack"] else shlex.join(argv)


def ensure_remote(project: Path, manifest: Manifest, server: Server, result: SetupResult) -> None:
    name = manifest.env
    url = server.target.git_url(server.renv.repo_path(manifest.app))
    current = localgit.remote_url(project, name)
    if current is None:
        localgit.add_remote(project, name, url)
        result.lines.append(step(f'Adding git remote "{name}" to local project'))
    elif current == url:
        result.lines.append(step(f'Git remote "{name}" already in place'))
    else:
        result.lines.append(step(f'Git remote "{name}" points to {current}; left as is', WARN))
        result.lines.append(f"      (expected {url}; change it with `git remote set-url {name} {url}`)")
        return
    rp = receive_pack(server)
    if rp is not None:
        localgit.git(project, "config", f"remote.{name}.receivepack", rp)
    ensure_ssh_command(project, server, result)


# A plain `git push` keeps its ssh connection open for the next one (a push-to-deploy
# loop pays the ssh handshake once): the socket is in ~/.ssh (the user's own, 0700),
# named by ssh's hash of host, port and user.
GIT_MUX_PATH = "~/.ssh/tova-%C"
GIT_MUX_PERSIST = "10m"


def ssh_command_for(config: str | None) -> str:
    """The project's core.sshCommand: connection multiplexing, and -F with a custom ssh
    config (TOVA_SSH_CONFIG) so a plain `git push` resolves the same hosts as `tova`."""
    argv = ["ssh"] + (["-F", os.path.abspath(config)] if config else [])
    argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={GIT_MUX_PATH}", "-o", f"ControlPersist={GIT_MUX_PERSIST}"]
    return shlex.join(argv)


def _earlier_ssh_commands(config: str | None) -> set[str]:
    """What earlier versions of --setup-git wrote: replaced, never warned about."""
    return {shlex.join(["ssh", "-F", os.path.abspath(config)])} if config else set()


def ensure_ssh_command(project: Path, server: Server, result: SetupResult) -> None:
    wanted = ssh_command_for(server.conn.config)
    res = localgit.git(project, "config", "--local", "--get", "core.sshCommand")
    current = res.out.strip() if res.exit_code == 0 else None
    if current == wanted:
        return
    if current and current not in _earlier_ssh_commands(server.conn.config):
        result.lines.append(step(f"core.sshCommand is {current!r}; left as is", WARN))
        result.lines.append(f"      (tova's is: git config core.sshCommand {shlex.quote(wanted)})")
        return
    # ssh does not create the socket's directory (a push would fail without it).
    (Path.home() / ".ssh").mkdir(mode=0o700, exist_ok=True)
    localgit.git(project, "config", "--local", "core.sshCommand", wanted)
    config = f"-F {server.conn.config}, " if server.conn.config else ""
    result.lines.append(step(f"git config core.sshCommand: ssh {config}one connection kept for {GIT_MUX_PERSIST}"))


def setup_git(
    project: Path, manifest: Manifest, server: Server, *, offline: bool, announce: bool = True,
    compiler: Path | None = None,
) -> SetupResult:
    result = SetupResult()
    localgit.require_repo(project)
    if announce:
        say(heading(f"Setting up git deployment on {server.display}..."))
    probe = server.probe(manifest.app)
    probe = ensure_python(server, probe)
    installed = installed_version(server, probe)
    ours = (tova.__version__, package_fingerprint())
    # The slow steps (a pip install, Bun and the compiler on a fresh server: a minute or
    # more) print their line first and their time when done.
    steps = client_steps()
    if installed == ours:
        result.lines.append(step(f"Toolkit {tova.__version__} already installed"))
    else:
        version = installed[0] if installed else None
        if version is None:
            verb = f"Installing toolkit {tova.__version__}"
        elif version == tova.__version__:
            verb = f"Updating toolkit {version} (this client's files differ)"
        else:
            verb = f"Upgrading toolkit {version} → {tova.__version__}"
        with steps.timed(verb):
            install_toolkit(server, probe, offline=offline, same_version=version == tova.__version__)
    if link_toolkit(server):
        result.lines.append(step(f"Linking {posixpath.join(server.renv.link_dir, 'tova-release')}"))
    say(*result.lines)
    result.lines.clear()

    say(*toolchain_lines(server, compiler, steps))

    init = server.release_json(["init", manifest.app, "--env", manifest.env, "--branch", manifest.branch])
    repo = init.get("repo") or server.renv.repo_path(manifest.app)
    result.repo_created = bool(init.get("created"))
    result.hook_installed = bool(init.get("hook_installed"))
    lines = [
        step(f"Creating bare repo at {repo}") if result.repo_created else step(f"Bare repo at {repo} already in place"),
        step("Installing pre-receive and post-receive hooks") if result.hook_installed
        else step("Pre-receive and post-receive hooks already installed"),
    ]
    say(*lines)
    ensure_remote(project, manifest, server, result)
    say(*result.lines)
    if announce:
        say("", heading("Done. You can now deploy with:"), f"    git push {manifest.env} {manifest.branch}")
    return result


# ---------------------------------------------------------------- toolchain
def toolchain_lines(server: Server, compiler: Path | None, steps: Out) -> list[str]:
    """Bun and the Tova compiler on the server before any build: the developer's compiler
    version, downloaded there (compiler_install) or uploaded from `compiler`. What the
    server installs meanwhile is shown as it goes (steps); returns the lines saying what
    it has."""
    args = ["toolchain"]
    local = local_compiler_version()
    if local:
        args += ["--expect-version", local]
    stdin = None
    if compiler is not None:
        entry, stdin = compiler_archive(compiler)
        args += ["--upload", entry]
    with steps.timed("Bun and the Tova compiler" + (" (uploading it)" if compiler is not None else "")):
        found = server.release_json(args, stdin=stdin, progress=steps.passthrough)
    lines = [note(f"Bun {found.get('bun')}, Tova compiler {found.get('compiler')}"
                  + (" (uploaded)" if compiler is not None else ""))]
    if local and found.get("compiler") != local:
        lines.append(note(f"your local compiler is {local}, the server's {found.get('compiler')}"))
    return lines


def local_compiler_version() -> str | None:
    """`tova --version` of the compiler this `tova` hands other commands to, if any."""
    from tova.client.on_path import find_compiler
    from tova.server.toolchain import parse_version

    compiler = find_compiler()
    if compiler is None:
        return None
    try:
        proc = subprocess.run([*shlex.split(compiler), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(proc.stdout) if proc.returncode == 0 else None


COMPILER_ENTRIES = ("bin/tova", "bin/tova.js", "tova")


def compiler_archive(path: Path) -> tuple[str, bytes]:
    """A compiler to upload: (its start command inside the archive, a tar.gz of it)."""
    if path.is_file():
        entry, members = "tova", [(path, "tova")]
    elif path.is_dir():
        entry = next((e for e in COMPILER_ENTRIES if (path / e).is_file()), "")
        if not entry:
            raise TovaError(f"{path} has none of {', '.join(COMPILER_ENTRIES)}",
                            hint="point --compiler at the compiler's binary, or at a directory with bin/tova")
        members = [(p, str(p.relative_to(path))) for p in sorted(path.iterdir()) if p.name != ".git"]
    else:
        raise TovaError(f"--compiler {path}: no such file or directory",
                        hint="a Linux build of the Tova compiler: a binary or a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for src, name in members:
            tar.add(src, arcname=name, filter=lambda ti: None if ti.name.endswith("/.git") else ti)
    return entry, buf.getvalue()
