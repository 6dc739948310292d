"""The pre-receive check: reject a push whose deploy cannot start, so that git itself
reports the failure (non-zero exit, `[remote rejected]`) and the branch does not move.

A push to the environment's branch is rejected when its deploy block does not validate
(or names another app), when a required secret is missing from .env.production, or when
the server has no Tova compiler and no way to install one. Anything else (a failing build,
a failing health check) can only be found by deploying: the post-receive hook does that
and rolls back. Pushes to other branches and deletions are accepted unchecked."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tova.errors import DeployError, MissingSecretsError, TovaError
from tova.layout import AppLayout
from tova.server import envfile, prechecked
from tova.server.safetar import extract_safely
from tova.settings import ServerSettings

ZERO = "0" * 40


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def branch(self) -> str | None:
        return self.ref[len("refs/heads/"):] if self.ref.startswith("refs/heads/") else None


def parse_updates(lines: Iterable[str]) -> list[Update]:
    """git's `old new ref` lines on the hook's stdin."""
    updates = []
    for raw in lines:
        parts = raw.split()
        if len(parts) == 3:
            updates.append(Update(*parts))
    return updates


def compiler_problem(settings: ServerSettings, which: Callable[[str], str | None] = shutil.which,
                     env: str = "ENV") -> TovaError | None:
    """No compiler and nothing configured to install one: no build can run. (With
    `compiler_install`, the build step installs a missing compiler: tova.server.toolchain.)"""
    from tova.server.toolchain import upload_hint
    from tova.settings import compiler_argv

    if settings.compiler_install.strip():
        return None
    try:
        argv = compiler_argv(settings)
    except ValueError:
        argv = []
    if argv and which(argv[0]):
        return None
    name = " ".join(argv) or settings.compiler
    return DeployError(
        f"the Tova compiler {name} is not installed on this server",
        hint=f"{upload_hint(env)}, or set `compiler` (or `compiler_install`) in {settings.config_path}",
    )


def extract_commit(git_dir: Path, commit: str, dest: Path) -> None:
    """The pushed commit's files. The objects are still in git's quarantine, which the git
    CLI (run by receive-pack with its environment) reads; members are extracted safely (nothing
    outside dest, no devices; links kept as they are, for the reader to refuse)."""
    proc = subprocess.Popen(["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            # The reader refuses links out of the project with their name: keep them for it.
            extract_safely(tar, dest, links_out=True)
    except tarfile.TarError as exc:
        raise DeployError(f"cannot read the pushed commit {commit[:12]}: {exc}",
                          hint="push again; if it persists, run `git fsck` in the project") from exc
    finally:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        rc = proc.wait()
    if rc != 0:
        raise DeployError(f"cannot read the pushed commit {commit[:12]}: {err.strip()[-200:]}",
                          hint="push again; if it persists, run `git fsck` in the project")


def check_update(settings: ServerSettings, app: AppLayout, env: str, deploy_branches: set[str],
                 git_dir: Path, update: Update) -> TovaError | None:
    """Why this ref update cannot deploy, or None (it deploys, or it is not deployed)."""
    from tova.loader import load_manifest

    branch = update.branch
    if branch is None or update.new == ZERO:
        return None
    with tempfile.TemporaryDirectory(prefix="tova-precheck-") as tmp:
        project = Path(tmp) / "src"
        extract_commit(git_dir, update.new, project)
        try:
            # the app's name is the one recorded at --setup-git, never the checkout's folder
            manifest = load_manifest(project, env, project_relative=True, recorded_app=app.name)
        except TovaError as err:
            # Which branch deploys is in the deploy block itself; when it cannot be read,
            # the branches known to deploy (deployed release, repository's HEAD) decide.
            return err if branch in deploy_branches else None
    if branch != manifest.branch:
        return None
    missing = envfile.missing(app.env_file, manifest.secrets.required)
    if missing:
        return MissingSecretsError(missing, env)
    if (problem := compiler_problem(settings, env=env)) is not None:
        return problem
    prechecked.keep(app, update.new, env, manifest)  # for the deploy that follows
    return None


def run_precheck(lines: Iterable[str], git_dir: Path, settings: ServerSettings, app: AppLayout,
                 env: str, out: TextIO) -> int:
    """The hook's exit status: 0 accepts every ref, 1 rejects the whole push."""
    status = 0
    branches = deploy_branches(git_dir, app)
    for update in parse_updates(lines):
        err = check_update(settings, app, env, branches, git_dir, update)
        if err is None:
            continue
        out.write(f"[tova] ✗ Push rejected: {update.ref} was not updated and nothing was deployed\n")
        out.write(err.render() + "\n")
        status = 1
    out.flush()
    return status


def deploy_branches(git_dir: Path, app: AppLayout) -> set[str]:
    """Branches known to deploy: the deployed release's, and the one `tova-release init
    --branch` set up (the bare repository's HEAD)."""
    from tova.server.releases import current_manifest

    found = set()
    manifest = current_manifest(app)
    if manifest is not None:
        found.add(manifest.branch)
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        head = ""
    if head.startswith("ref: refs/heads/"):
        found.add(head[len("ref: refs/heads/"):])
    return found

