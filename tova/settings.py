"""Server-wide settings: /opt/tova/config.toml, overridable per run by environment
variables (TOVA_<NAME in upper case>). Defaults work on a stock Debian or Ubuntu server."""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tova.errors import TovaError
from tova.layout import Layout

DEFAULT_ROOT = "/opt/tova"
# The release asset of the compiler's own installer: tag vX.Y.Z (or the latest release).
DEFAULT_COMPILER_INSTALL = (
    'release=latest/download; [ -z "$TOVA_VERSION" ] || release="download/v$TOVA_VERSION"; '
    'curl -fsSL --proto "=https" -o "$TOVA_COMPILER_DIR/tova.download" '
    '"https://github.com/tova-lang/tova-lang/releases/$release/tova-linux-$TOVA_ARCH" '
    '&& chmod 0755 "$TOVA_COMPILER_DIR/tova.download" '
    '&& mv "$TOVA_COMPILER_DIR/tova.download" "$TOVA_COMPILER_DIR/tova"'
)


@dataclass(frozen=True)
class ServerSettings:
    root: str = DEFAULT_ROOT  # TOVA_ROOT: everything of ours lives below it
    # The Tova compiler: the command (split like a shell would) and how provisioning
    # installs it when it is missing ("" = do not install; the command must exist).
    # "" = the compiler tova-deploy keeps at <root>/compiler/tova (installed by
    # compiler_install, or uploaded with `tova deploy <env> --setup-git --compiler PATH`).
    compiler: str = ""
    # Runs with TOVA_VERSION, TOVA_ARCH (x64/arm64) and TOVA_COMPILER_DIR set; the default
    # fetches the compiler's official Linux release binary.
    compiler_install: str = DEFAULT_COMPILER_INSTALL
    # The compiler version builds must use; by default the developer's, recorded by
    # --setup-git in <root>/compiler/version ("" = any).
    compiler_version: str = ""
    # Bun: pinned version; source "npm" (the `bun` package through npm, registry only)
    # or "archive" (bun_archive_url verified against bun_archive_sha256).
    bun_version: str = "1.4.5"
    bun_source: str = "npm"
    bun_archive_url: str = ""
    bun_archive_sha256: str = ""
    # Seconds a restarted instance may take to answer its health check.
    startup_deadline: float = 30.0
    # Seconds a deploy waits for another deploy of the same app.
    lock_wait: float = 300.0
    first_port: int = 3000
    # Certificates: "auto" (Let's Encrypt / ZeroSSL through Caddy's automatic HTTPS) or
    # "internal" (Caddy's own local CA: for test servers without public DNS).
    tls: str = "auto"

    @property
    def config_path(self) -> Path:
        return Path(self.root) / "config.toml"


def load_settings(environ: dict[str, str] | None = None) -> ServerSettings:
    """Defaults, then <root>/config.toml, then TOVA_* environment variables."""
    env = os.environ if environ is None else environ
    settings = ServerSettings(root=env.get("TOVA_ROOT", DEFAULT_ROOT))
    path = settings.config_path
    values: dict[str, object] = {}
    if path.is_file():
        try:
            text = path.read_text()
        except UnicodeDecodeError as exc:
            raise TovaError(f"{path}: {exc}", hint="fix the TOML syntax of the settings file") from exc
        values = _toml_values(text, path)
    for f in fields(ServerSettings):
        key = "TOVA_" + f.name.upper()
        if key in env and f.name != "root":
            values[f.name] = env[key]
    recorded = Path(settings.root) / "compiler" / "version"
    if "compiler_version" not in values and recorded.is_file():
        values["compiler_version"] = recorded.read_text().strip()
    return _coerced(settings, values, path)


def parse_settings(text: str, root: str = DEFAULT_ROOT) -> ServerSettings:
    """A server's config.toml as load_settings reads it, from its text (the client's plan
    reads a server's file this way before the toolkit is there): no environment."""
    settings = ServerSettings(root=root)
    return _coerced(settings, _toml_values(text, settings.config_path), settings.config_path)


def _toml_values(text: str, path: Path) -> dict[str, object]:
    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise TovaError(f"{path}: {exc}", hint="fix the TOML syntax of the settings file") from exc


def _coerced(settings: ServerSettings, values: dict[str, object], path: Path) -> ServerSettings:
    known = {f.name: f for f in fields(ServerSettings)}
    coerced: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in known:
            raise TovaError(
                f"{path}: unknown setting {name!r}",
                hint="known settings: " + ", ".join(sorted(known)),
            )
        default = getattr(settings, name)
        try:
            coerced[name] = type(default)(raw)
        except (TypeError, ValueError):
            raise TovaError(
                f"setting {name!r}: {raw!r} is not a {type(default).__name__}",
                hint=f"fix it in {path} or in TOVA_{name.upper()}",
            ) from None
    return replace(settings, **coerced)


def compiler_argv(settings: ServerSettings) -> list[str]:
    """The compiler's command: the `compiler` setting split as a shell would, else the
    compiler installed under the root."""
    return shlex.split(settings.compiler) or [str(Layout.of(settings.root).compiler_dir / "tova")]


# Server settings that change what provisioning makes, and the layer each one is part of:
# a change in config.toml reprovisions that layer on the next deploy.
PROVISIONED: dict[str, str] = {
    "tls": "proxy",
    "bun_version": "system", "bun_source": "system", "bun_archive_url": "system", "bun_archive_sha256": "system",
    "compiler": "system", "compiler_install": "system", "compiler_version": "system",
}


def provisioned(settings: ServerSettings) -> dict[str, str]:
    """The settings a release records, to compare with the next deploy's."""
    return {name: str(getattr(settings, name)) for name in PROVISIONED}


def settings_layers(recorded: object, settings: ServerSettings) -> set[str]:
    """Layers whose settings changed since the release that recorded them (none when it
    recorded none: a release made before settings were recorded)."""
    if not isinstance(recorded, dict):
        return set()
    now = provisioned(settings)
    return {PROVISIONED[k] for k in PROVISIONED if k in recorded and recorded[k] != now[k]}
