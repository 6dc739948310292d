"""The post-receive hook's logic: read git's `old new ref` lines and deploy a push to the
environment's branch through the one pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tova.errors import EXIT_REMOTE, TovaError
from tova.layout import Layout
from tova.progress import Out
from tova.settings import ServerSettings

if TYPE_CHECKING:
    from dulwich.config import Config
    from dulwich.repo import Repo

    from tova.server.system import System


def repo_identity(repo: Repo) -> tuple[str, str]:
    """The app and environment this repository deploys (set by `tova-release init`)."""
    return _identity(repo.get_config())


def config_identity(git_dir: Path) -> tuple[str, str]:
    """repo_identity from the repository's config file alone (the pre-receive check opens
    no repository: it runs on every push)."""
    from dulwich.config import ConfigFile

    try:
        cfg = ConfigFile.from_path(str(git_dir / "config"))
    except FileNotFoundError:
        cfg = ConfigFile()
    return _identity(cfg)


def _identity(cfg: Config) -> tuple[str, str]:
    try:
        return cfg.get((b"tova",), b"app").decode(), cfg.get((b"tova",), b"env").decode()
    except KeyError:
        raise TovaError("this repository is not set up for tova (no tova.app / tova.env in its config)",
                        hint="run in the project: tova deploy ENV --setup-git", exit_code=EXIT_REMOTE) from None


def run_hook(lines: Iterable[str], git_dir: Path, settings: ServerSettings, system: System,
             out: Out) -> int:
    from dulwich.repo import Repo

    from tova.server.pipeline import ZERO, deploy

    repo = Repo(str(git_dir))
    app_name, env = repo_identity(repo)
    layout = Layout.of(settings.root)
    app = layout.app(app_name)
    status = 0
    for raw in lines:
        parts = raw.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        if new == ZERO:
            out.info(f"Ignoring deletion of {ref}: nothing to deploy")
            continue
        if not ref.startswith("refs/heads/"):
            out.info(f"Ignoring {ref}: only pushes to a branch deploy")
            continue
        branch = ref[len("refs/heads/"):]
        out.info(f"Received push to {branch}")
        outcome = deploy(settings, layout, app, env, repo, system, out, new.encode(), branch)
        status = max(status, outcome.exit_code)
    return status
