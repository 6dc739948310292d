"""Every path under the toolkit's root, in one place: the server side uses it, and the
client spells remote paths with it. No other module spells /opt/tova."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tova.errors import TovaError
from tova.naming import APP_NAME_RULE, is_app_name

RELEASE_RE = re.compile(r"^v(\d+)$")
STATIC = "static"  # the folder of a release that Caddy serves (tova.server.assets fills it)


def check_app_name(app: str) -> str:
    if not is_app_name(app):
        raise TovaError(f"invalid app name {app!r}", hint=f"app names use {APP_NAME_RULE}")
    return app


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def of(cls, root: str | Path) -> Layout:
        return cls(Path(root))

    # server-wide
    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    @property
    def registry_lock(self) -> Path:
        return self.root / ".registry.lock"

    @property
    def system_stamp(self) -> Path:
        """The inputs the system layer last ran with (tova.server.system_layer)."""
        return self.root / "system-layer.json"

    @property
    def apps_dir(self) -> Path:
        return self.root / "apps"

    @property
    def caddy_dir(self) -> Path:
        return self.root / "caddy"

    @property
    def caddy_master(self) -> Path:
        return self.caddy_dir / "Caddyfile"

    @property
    def caddy_apps_dir(self) -> Path:
        return self.caddy_dir / "apps"

    def caddy_app(self, app: str) -> Path:
        return self.caddy_apps_dir / f"{check_app_name(app)}.caddy"

    @property
    def upstreams_dir(self) -> Path:
        """One file per app: the ports Caddy sends its requests to (tova.server.upstreams)."""
        return self.root / "upstreams"

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def compiler_dir(self) -> Path:
        """Where an uploaded or installed Tova compiler lives (its `tova` inside)."""
        return self.root / "compiler"

    @property
    def toolkit(self) -> Path:
        """The toolkit's venv (tova-deploy installed into it)."""
        return self.root / "toolkit"

    @property
    def toolkit_python(self) -> Path:
        return self.toolkit / "bin" / "python"

    @property
    def tova_release(self) -> Path:
        return self.toolkit / "bin" / "tova-release"

    @property
    def run_dir(self) -> Path:
        """Runtime state of the LocalSystem adapter (pid files, logs)."""
        return self.root / "run"

    # per app
    def app(self, app: str) -> AppLayout:
        return AppLayout(self.apps_dir / check_app_name(app), app)


@dataclass(frozen=True)
class AppLayout:
    dir: Path
    name: str

    @property
    def repo(self) -> Path:
        return self.dir / "repo.git"

    def git_hook(self, name: str) -> Path:
        """hooks/<name> of the app's bare repository (pre-receive, post-receive)."""
        return self.repo / "hooks" / name

    @property
    def releases(self) -> Path:
        return self.dir / "releases"

    def release(self, version: str) -> Path:
        return self.releases / version

    @staticmethod
    def current_target(version: str) -> str:
        """What `current` points at: relative, so the app directory can move."""
        return f"releases/{version}"

    @property
    def current(self) -> Path:
        return self.dir / "current"

    @property
    def current_static(self) -> Path:
        return self.current / STATIC

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def env_file(self) -> Path:
        return self.dir / ".env.production"

    @property
    def deploy_env_file(self) -> Path:
        """The deploy block's env { } values: root-only, read by systemd (never in a unit)."""
        return self.dir / ".env.deploy"

    @property
    def provision_script(self) -> Path:
        return self.dir / "provision.sh"

    @property
    def health_script(self) -> Path:
        return self.dir / "health-check.sh"

    @property
    def build_dir(self) -> Path:
        return self.dir / "build"

    @property
    def deps(self) -> Path:
        """Installed npm dependencies, one folder per dependency set (a cache)."""
        return self.dir / "deps"

    @property
    def history(self) -> Path:
        return self.dir / "history.jsonl"

    @property
    def build_log(self) -> Path:
        """The last build's whole compiler output (`tova deploy <env> --logs --build`)."""
        return self.dir / "last-build.log"

    @property
    def deploy_lock(self) -> Path:
        return self.dir / ".deploy.lock"

    @property
    def lock_info(self) -> Path:
        return self.dir / ".deploy.lock.info"

    @property
    def release_counter(self) -> Path:
        return self.dir / ".release-counter"

    def current_version(self) -> str | None:
        """The release `current` points at, or None when there is none."""
        try:
            target = self.current.readlink()
        except (FileNotFoundError, OSError):
            return None
        name = target.name
        return name if RELEASE_RE.match(name) else None
