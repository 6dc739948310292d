"""Manifest + ports + server settings -> the generated files (pure: no I/O but
`write_rendered`). Every value reaches a file through a quoting filter of tova.quoting."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import jinja2

from tova import naming, quoting
from tova.errors import ConfigError
from tova.fingerprint import watcher_version
from tova.layout import Layout
from tova.manifest import MANIFEST_FILE, Manifest, canonical_json, probe_path
from tova.naming import (  # shared with the server side
    APP_NAME_RULE,
    RESERVED_MYSQL_DATABASES,
    RESERVED_PG_DATABASES,
    app_user,
    is_app_name,
    is_env_name,
    is_env_var,
    pg_database,
    pg_role,
    redis_conf,
    redis_dir,
    redis_socket,
    redis_unit,
    redis_url,
    unit_template,
)
from tova.settings import ServerSettings, compiler_argv

BUN_PATH = "/usr/local/bin/bun"
DEPLOY_ENV = "env/deploy.env"  # the deploy block's env { }, installed root-only beside the app
SERVER_ENTRY = "server.js"  # the pipeline guarantees this entry in every release


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tova", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # Bash's ${#array[@]} would open a default jinja comment.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters.update(quoting.FILTERS)
    return env


_ENV = _environment()


def render_all(manifest: Manifest, ports: list[int], settings: ServerSettings) -> dict[str, str]:
    """All generated files of one app, keyed by path relative to the output directory."""
    ctx = _context(manifest, ports, settings)
    app = manifest.app
    try:
        files = {
            "caddy/Caddyfile": _render("Caddyfile.j2", ctx),
            f"caddy/apps/{app}.caddy": _render("app.caddy.j2", ctx),
            f"systemd/{unit_template(app)}": _render("app.service.j2", ctx),
            "systemd/tova-health.service": _render("tova-health.service.j2", ctx),
            "caddy/global.caddy": _render("caddy-global.caddy.j2", ctx),
            "systemd/caddy.service.d/tova.conf": _render("caddy-dropin.conf.j2", ctx),
            "systemd/tova-upstreams.service": _render("upstreams.service.j2", ctx),
            DEPLOY_ENV: _render("deploy.env.j2", ctx),
        }
        # (template variable, delimiter variable, file) for each file provision.sh carries.
        embedded = [
            ("caddy_master_text", "delim_caddy_master", "caddy/Caddyfile"),
            ("caddy_app_text", "delim_caddy", f"caddy/apps/{app}.caddy"),
            ("app_unit_text", "delim_unit", f"systemd/{unit_template(app)}"),
            ("health_service_text", "delim_health_service", "systemd/tova-health.service"),
            ("caddy_global_text", "delim_caddy_global", "caddy/global.caddy"),
            ("caddy_dropin_text", "delim_caddy_dropin", "systemd/caddy.service.d/tova.conf"),
            ("upstreams_unit_text", "delim_upstreams_unit", "systemd/tova-upstreams.service"),
            ("deploy_env_text", "delim_deploy_env", DEPLOY_ENV),
        ]
        for text_var, delim_var, rel in embedded:
            # Quoted here-documents carry each file verbatim; the delimiter is not a line of it.
            ctx[text_var] = files[rel]
            ctx[delim_var] = quoting.heredoc_delimiter(files[rel])
        files["provision.sh"] = _render("provision.sh.j2", ctx)
    except ValueError as exc:
        raise ConfigError(
            f"cannot generate the server files for {app}: {exc}",
            hint="change the value in the deploy block (or the settings) to something plainer",
        ) from exc
    data = manifest.to_dict()
    data["ports"] = list(ports)
    files[MANIFEST_FILE] = canonical_json(data) + "\n"
    return files


def write_rendered(files: dict[str, str], out_dir: Path) -> None:
    """Write rendered files below out_dir; scripts are executable."""
    for rel, text in files.items():
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise ConfigError(f"refusing to write {rel!r} outside {out_dir}")
        path = Path(out_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755 if rel.endswith(".sh") else 0o600 if rel == DEPLOY_ENV else 0o644)


def _render(name: str, ctx: dict[str, Any]) -> str:
    text = _ENV.get_template(name).render(**ctx)
    if not text.endswith("\n"):
        text += "\n"
    return text


def _context(m: Manifest, ports: list[int], s: ServerSettings) -> dict[str, Any]:
    _validate(m, ports, s)
    layout = Layout.of(s.root.rstrip("/") or "/")
    a = layout.app(m.app)
    pg = m.database("postgres")
    mysql = m.database("mysql")
    redis = m.database("redis")
    sqlite = m.database("sqlite")
    packages = ["curl", "ca-certificates", "ufw"]
    # Database servers belong to the databases layer (see Manifest.layer_inputs).
    db_packages = []
    if pg:
        db_packages.append("postgresql")
    if mysql:
        db_packages.append("mariadb-server")
    if redis:
        db_packages.append("redis-server")
    if s.bun_source == "npm":
        packages += ["nodejs", "npm"]
    elif s.bun_archive_url.endswith(".zip"):
        packages.append("unzip")
    after = []
    if pg:
        after.append("postgresql.service")
    if mysql:
        after.append("mariadb.service")
    if redis:
        after.append(redis_unit(m.app))
    cors = list(m.proxy.cors_origins)
    sqlite_dirs = sorted(
        {os.path.normpath(f"{a.data}/{os.path.dirname(path)}") for path in sqlite.paths}
        if sqlite
        else set()
    )
    if sqlite and str(a.data) not in sqlite_dirs:
        sqlite_dirs.insert(0, str(a.data))
    return {
        "app": m.app,
        "env": m.env,
        "domain": m.domain,
        "tls_internal": s.tls == "internal",
        "infra_hash": m.infra_hash(),
        "ports": list(ports),
        "upstreams": [f"127.0.0.1:{port}" for port in ports],
        "upstreams_srv": naming.upstreams_srv(m.app),
        "upstreams_zone": naming.UPSTREAMS_ZONE,
        "upstreams_refresh": f"{naming.UPSTREAMS_REFRESH_MS}ms",
        "upstreams_listen": f"{naming.UPSTREAMS_HOST}:{naming.UPSTREAMS_PORT}",
        "upstreams_resolver": f"udp/{naming.UPSTREAMS_HOST}:{naming.UPSTREAMS_PORT}",
        "upstreams_dir": str(layout.upstreams_dir),
        "caddy_admin": f"unix/{naming.CADDY_ADMIN_SOCKET}",
        "caddy_admin_socket": naming.CADDY_ADMIN_SOCKET,
        "caddy_admin_dirname": Path(naming.CADDY_ADMIN_SOCKET).parent.name,
        "caddy_global": str(layout.caddy_dir / "global.caddy"),
        "root": str(layout.root),
        "app_dir": str(a.dir),
        "releases_dir": str(a.releases),
        "data_dir": str(a.data),
        "current_dir": str(a.current),
        "env_file": str(a.env_file),
        "deploy_env_file": str(a.deploy_env_file),
        "provision_path": str(a.provision_script),
        "health_script": str(a.health_script),
        "toolkit_python": str(layout.toolkit_python),
        "toolkit_version": watcher_version(),
        "caddy_dir": str(layout.caddy_dir),
        "caddy_master": str(layout.caddy_master),
        "caddy_app_file": str(layout.caddy_app(m.app)),
        "caddy_apps_glob": f"{layout.caddy_apps_dir}/*.caddy",
        "static_dir": str(a.current_static),
        "user": app_user(m.app),
        "packages": packages,
        "db_packages": db_packages,
        "bun_version": s.bun_version,
        "bun_source": s.bun_source,
        "bun_archive_url": s.bun_archive_url,
        "bun_archive_sha256": s.bun_archive_sha256.lower(),
        "bun_path": BUN_PATH,
        "server_entry": str(a.current / SERVER_ENTRY),
        **_toolchain_context(s),
        "postgres": bool(pg),
        "pg_role": pg_role(m.app),
        "pg_db": pg_database(m.app, pg.name) if pg else "",
        "pg_db_url_path": url_quote(pg_database(m.app, pg.name), safe="") if pg else "",
        "pg_port": (pg.port or 5432) if pg else 5432,
        "mysql": bool(mysql),
        "my_user": pg_role(m.app),
        "my_db": mysql.name if mysql else "",
        "redis": bool(redis),
        "redis_unit": redis_unit(m.app),
        "redis_socket": redis_socket(m.app),
        "redis_conf": redis_conf(m.app),
        "redis_dir": redis_dir(m.app),
        "redis_url": redis_url(m.app),
        "redis_maxmemory": str(redis.maxmemory_bytes) if redis and redis.maxmemory_bytes else "",
        "sqlite": bool(sqlite),
        "sqlite_dirs": sqlite_dirs,
        "required_secrets": list(m.secrets.required),
        "auto_secrets": list(m.secrets.auto),
        "env_vars": list(m.env_vars),
        "memory_bytes": m.memory_bytes,
        "restart_on_failure": m.restart_on_failure,
        "health_path": probe_path(m.health),
        "health_fallback": m.health.fallback,
        "health_interval": m.health.interval,
        "health_timeout": m.health.timeout,
        "startup_deadline": max(1, math.ceil(s.startup_deadline)),
        "after_units": after,
        "websocket": m.proxy.websocket,
        "static": m.proxy.static,
        "sse_paths": list(m.proxy.sse_paths) if m.proxy.sse else [],
        "cors_origins": cors,
        "cors_any": "*" in cors,
    }


def render_toolchain(s: ServerSettings) -> str:
    """toolchain.sh: Bun and the Tova compiler, run before a build when either is missing."""
    _validate_toolchain(s)
    return _render("toolchain.sh.j2", {
        "root": s.root, "bun_version": s.bun_version, "bun_source": s.bun_source,
        "bun_archive_url": s.bun_archive_url, "bun_archive_sha256": s.bun_archive_sha256.lower(),
        **_toolchain_context(s)})


def _toolchain_context(s: ServerSettings) -> dict[str, str]:
    return {
        "compiler_cmd": " ".join(compiler_argv(s)),
        "compiler_install": s.compiler_install,
        "compiler_dir": str(Layout.of(s.root).compiler_dir),
        "tova_version": s.compiler_version,
    }


def _fail(message: str, hint: str) -> None:
    raise ConfigError(message, hint=hint)


def _validate(m: Manifest, ports: list[int], s: ServerSettings) -> None:
    """Checks that quoting alone cannot express: the shape of names, numbers and paths."""
    _validate_names(m)
    _validate_settings(s)
    _validate_ports(ports)
    _validate_numbers(m)
    _validate_paths(m)
    _validate_databases(m)
    _validate_toolchain(s)


def _validate_names(m: Manifest) -> None:
    if not is_app_name(m.app):
        _fail(f"invalid app name {m.app!r}", f"app names are {APP_NAME_RULE}")
    if not is_env_name(m.env):
        _fail(f"invalid environment name {m.env!r}", "use letters, digits, _ and -, starting with a letter")
    if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", m.domain):
        _fail(f"invalid domain {m.domain!r}", "e.g. myapp.com")
    for name in (*m.secrets.required, *m.secrets.auto, *(k for k, _ in m.env_vars)):
        if not is_env_var(name):
            _fail(f"invalid environment variable name {name!r}", "use letters, digits and _")


def _validate_settings(s: ServerSettings) -> None:
    if s.tls not in ("auto", "internal"):
        _fail(f"setting tls: {s.tls!r}", 'use "auto" or "internal"')
    try:
        quoting.systemd_path(s.root)
    except ValueError as exc:
        _fail(f"setting root: {exc}", "use a plain absolute path such as /opt/tova")


def _is_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


def _validate_ports(ports: list[int]) -> None:
    if not ports or len(set(ports)) != len(ports):
        _fail(f"bad port list {ports!r}", "give one distinct port per instance")
    for port in ports:
        if not _is_port(port):
            _fail(f"bad port {port!r}", "ports are integers 1-65535")


def _validate_numbers(m: Manifest) -> None:
    for label, value in (
        ("memory", m.memory_bytes),
        ("health_interval", m.health.interval),
        ("health_timeout", m.health.timeout),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            _fail(f"{label} must be a positive integer, not {value!r}", f"fix {label} in the deploy block")


def _validate_paths(m: Manifest) -> None:
    if not m.health.path.startswith("/") or re.search(r"\s", m.health.path):
        _fail(f"health path {m.health.path!r} must start with / and have no spaces", "e.g. /healthz")
    for path in m.proxy.sse_paths:
        if not path.startswith("/"):
            _fail(f"sse path {path!r} must start with /", "e.g. sse \"/events\"")
    for origin in m.proxy.cors_origins:
        if origin != "*" and (origin.startswith("*") or origin.endswith("*") or not origin):
            # Caddy's header matcher treats a leading or trailing * as a wildcard.
            _fail(f"CORS origin {origin!r} is not an exact origin", "list origins like https://app.example.com")


def _validate_mysql(m: Manifest) -> None:
    my = m.database("mysql")
    if not my:
        return
    # provision.sh puts the name into SQL text and DATABASE_URL unquoted.
    if not re.fullmatch(r"[a-z0-9_]{1,64}", my.name or ""):
        _fail(f"MariaDB database name {my.name!r} is not 1-64 of a-z, 0-9 and _",
              "use lower-case letters, digits and _ only")
    if my.name in RESERVED_MYSQL_DATABASES:
        _fail(f"the database name {my.name!r} is reserved by MariaDB", "name the app's database something else")


def _validate_databases(m: Manifest) -> None:
    pg = m.database("postgres")
    if pg:
        name = pg_database(m.app, pg.name)
        if len(name.encode()) > 63 or re.search(r"[\x00-\x1f\x7f]", name):
            _fail(f"PostgreSQL database name {name!r} is too long or has control characters",
                  "use at most 63 bytes of printable text")
        if name.lower() in RESERVED_PG_DATABASES:
            _fail(f"the database name {name!r} is reserved by PostgreSQL",
                  "name the app's database something else in its deploy block's db { name: ... }")
        if pg.port is not None and not _is_port(pg.port):
            _fail(f"bad PostgreSQL port {pg.port!r}", "ports are 1-65535")
    _validate_mysql(m)
    redis = m.database("redis")
    if redis and redis.port is not None and not _is_port(redis.port):
        _fail(f"bad Redis port {redis.port!r}", "ports are 1-65535")
    sqlite = m.database("sqlite")
    for path in sqlite.paths if sqlite else ():
        parts = path.split("/")
        if path.startswith("/") or ".." in parts or "\x00" in path:
            _fail(f"SQLite path {path!r} must stay inside the data directory", "use a relative path")


def _validate_toolchain(s: ServerSettings) -> None:
    if s.bun_source not in ("npm", "archive"):
        _fail(f"bun_source {s.bun_source!r} is not npm or archive", "set bun_source in config.toml")
    if s.bun_source == "archive" and not (
        s.bun_archive_url.startswith("https://") and re.fullmatch(r"[0-9a-fA-F]{64}", s.bun_archive_sha256)
    ):
        _fail(
            "bun_source is archive but bun_archive_url (https) or bun_archive_sha256 is missing",
            "set both in config.toml, or use bun_source = \"npm\"",
        )
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", s.bun_version):
        _fail(f"bad bun_version {s.bun_version!r}", "e.g. 1.4.5")
    if s.compiler_version and not re.fullmatch(r"\d[0-9A-Za-z.+-]{0,40}", s.compiler_version):
        _fail(f"bad compiler_version {s.compiler_version!r}", "e.g. 0.11.26")
