"""Infrastructure inference: one small function per row of the design's table.

Pure: Program + DeployConfig in, Manifest out."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from tova.config import DeployConfig, check_relative_path
from tova.errors import ConfigError
from tova.lang.program import Program, RouteDecl, Value
from tova.manifest import Database, HealthCheck, Manifest, Proxy, Secrets
from tova.naming import pg_database

ORIGIN_RE = re.compile(r"^(\*|https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?)$")
SSE_PATH_RE = re.compile(r"^/[A-Za-z0-9._~%/:@!$&()*+,;=-]*$")
# The drivers the compiler's code generator knows (it reads `driver:` only); any other
# value, or none, is SQLite.
COMPILER_DRIVERS = {"postgres": "postgres", "mysql": "mysql"}
# Spellings of `type:` (the design document's key, which the compiler ignores).
TYPE_ALIASES = {"postgres": "postgres", "postgresql": "postgres", "pg": "postgres", "mysql": "mysql",
                "redis": "redis", "sqlite": "sqlite", "sqlite3": "sqlite"}
# env { } names that point the app at a database elsewhere: no engine is provisioned.
EXTERNAL_URLS = {"DATABASE_URL": ("postgres", "mysql"), "REDIS_URL": ("redis",)}
ENGINES = ("postgres", "mysql", "redis", "sqlite")  # the order plans and files list them in
# Names the platform provides: never asked of the user.
PROVIDED_ENV = frozenset({"PORT", "DATABASE_URL", "REDIS_URL", "NODE_ENV"})


def build_manifest(program: Program, config: DeployConfig, project_root: str | Path | None = None) -> Manifest:
    _require_server(program)
    databases = _without_external(config, _merge_overrides(config, infer_databases(program, config)))
    engines = {d.engine for d in databases}
    return Manifest(
        env=config.env,
        app=config.app,
        project=program.project_name,
        server=config.server,
        domain=config.domain,
        instances=config.instances,
        memory_bytes=config.memory_bytes,
        branch=config.branch,
        health=infer_health(program, config),
        restart_on_failure=config.restart_on_failure,
        keep_releases=config.keep_releases,
        env_vars=tuple(sorted(config.env_vars)),
        databases=databases,
        system=infer_system(program, engines),
        proxy=_with_public(infer_proxy(program), project_root),
        secrets=infer_secrets(program, engines),
        data_files=infer_data_files(program, project_root or program.root),
    )


def infer_health(program: Program, config: DeployConfig) -> HealthCheck:
    """The deploy block's health path, checked strictly when written or when a GET route
    answers it; else the documented fallback (tova.server.health.FALLBACK)."""
    explicit = "health" in config.locations
    fallback = not explicit and health_route(program, config.health) is None
    return HealthCheck(config.health, config.health_interval, config.health_timeout, fallback)


def health_route(program: Program, path: str) -> RouteDecl | None:
    """The first GET route of a server block whose path matches `path`."""
    for server in program.servers:
        for route in server.routes:
            if route.method == "GET" and route.path is not None and route_matches(route.path, path):
                return route
    return None


def route_matches(pattern: str, path: str) -> bool:
    """`/users/:id` matches `/users/7`; a `*` segment matches the rest of the path."""
    want = [p for p in pattern.split("/") if p]
    got = [p for p in path.split("?", 1)[0].split("/") if p]
    for i, seg in enumerate(want):
        if seg == "*" or seg.startswith("*"):
            return True
        if i >= len(got) or not (seg.startswith(":") or seg == got[i]):
            return False
    return len(want) == len(got)


def _require_server(program: Program) -> None:
    if not program.servers:
        raise ConfigError(
            "this project has no server block, so there is nothing to run",
            hint="tova-deploy runs the app's server { } block; add one to a .tova file",
        )


def infer_system(program: Program, engines: set[str]) -> tuple[str, ...]:
    """server { } → Bun (systemd is always there); domain → Caddy; always UFW."""
    system = ["bun", "caddy", "ufw"]
    if "postgres" in engines:
        system.append("postgresql")
    if "mysql" in engines:
        system.append("mariadb")
    if "redis" in engines:
        system.append("redis")
    return tuple(system)


def infer_databases(program: Program, config: DeployConfig) -> list[Database]:
    """server db { driver: postgres } → PostgreSQL; any other driver, or none, → SQLite,
    as the compiler's generated code connects. With DATABASE_URL in env { } (or a
    literal `url:`), the database is elsewhere and nothing is provisioned for it."""
    found: dict[str, Database] = {}
    sqlite_paths: list[str] = []
    external = {name for name, _ in config.env_vars}
    for server in program.servers:
        for db in server.dbs:
            fields = {f.key: f.value for f in db.fields}
            engine = db_engine(fields)
            url = fields.get("url")
            if engine == "sqlite":
                path = fields.get("path")
                if path is not None and path.kind == "string":
                    p = check_relative_path(str(path.value), path.loc, "sqlite path")
                    if p not in sqlite_paths:
                        sqlite_paths.append(p)
                found.setdefault("sqlite", Database("sqlite"))
            elif url is not None and url.kind == "string" or "DATABASE_URL" in external:
                continue  # connects to a server of its own
            elif engine == "mysql":
                found.setdefault("mysql", Database("mysql", name=pg_database(config.app)))
            else:
                found.setdefault("postgres", Database("postgres", name=pg_database(config.app), port=5432))
    if "sqlite" in found:
        found["sqlite"] = Database("sqlite", paths=tuple(sqlite_paths))
    return [found[e] for e in ENGINES if e in found]


def db_engine(fields: dict[str, Value]) -> str:
    """The engine the app will connect to: the compiler reads `driver:` only. A `type:`
    that says otherwise is an error naming `driver:` (it would silently mean SQLite)."""
    driver = fields.get("driver")
    engine = "sqlite"
    if driver is not None:
        if driver.kind != "string":
            raise ConfigError("db driver must be a string literal to deploy",
                              hint='write driver: "postgres" (or "sqlite", "mysql")', loc=driver.loc)
        engine = COMPILER_DRIVERS.get(str(driver.value), "sqlite")
    typed = fields.get("type")
    if typed is not None:
        said = TYPE_ALIASES.get(str(typed.value).lower()) if typed.kind == "string" else None
        if said != engine:
            if said == "redis":
                hint = "the compiler's db { } is SQL only: for Redis add db { redis { } } to the deploy block"
            elif said in ("postgres", "mysql"):
                hint = f'write driver: "{said}" (the compiler reads driver:, not type:)'
            else:
                hint = 'write driver: "postgres", "mysql" or "sqlite" (the compiler reads driver:, not type:)'
            got = f'driver: "{driver.value}"' if driver is not None else "no driver:"
            raise ConfigError(
                f"db {typed.text} is ignored by the Tova compiler: with {got} the app uses {engine}",
                hint=hint,
                loc=typed.loc,
            )
    return engine


def _int(value: object) -> int:
    if not isinstance(value, int):  # config validated the type; this keeps mypy honest
        raise TypeError(f"expected an integer setting, got {value!r}")
    return value


def _merge_overrides(config: DeployConfig, inferred: list[Database]) -> tuple[Database, ...]:
    """Deploy db { } overrides adjust inferred engines or add new ones; never drop one."""
    by_engine = {d.engine: d for d in inferred}
    for o in config.db_overrides:
        current = by_engine.get(o.engine)
        if o.engine == "postgres":
            base = current or Database("postgres", name=pg_database(config.app), port=5432)
            by_engine["postgres"] = Database(
                "postgres",
                name=str(o.settings.get("name", base.name)),
                port=_int(o.settings.get("port", base.port)),
            )
        elif o.engine == "redis":
            base = current or Database("redis")
            maxmemory = o.settings.get("maxmemory", base.maxmemory_bytes)
            by_engine["redis"] = Database("redis", maxmemory_bytes=None if maxmemory is None else _int(maxmemory))
        else:
            base = current or Database("sqlite")
            paths = list(base.paths)
            if "path" in o.settings and o.settings["path"] not in paths:
                paths.insert(0, str(o.settings["path"]))
            by_engine["sqlite"] = Database("sqlite", paths=tuple(paths))
    return tuple(by_engine[e] for e in ENGINES if e in by_engine)


def _without_external(config: DeployConfig, databases: tuple[Database, ...]) -> tuple[Database, ...]:
    """DATABASE_URL / REDIS_URL in env { } name a database elsewhere: provision none."""
    names = {name for name, _ in config.env_vars}
    for name, engines in EXTERNAL_URLS.items():
        if name not in names:
            continue
        for o in config.db_overrides:
            if o.engine in engines:
                raise ConfigError(
                    f"deploy db {{ {o.engine} }} and env {{ {name} }} contradict each other",
                    hint=f"keep {name} for a database elsewhere, or db {{ {o.engine} }} for one on the server",
                    loc=o.loc,
                )
    dropped = {e for name, engines in EXTERNAL_URLS.items() if name in names for e in engines}
    return tuple(d for d in databases if d.engine not in dropped)


def infer_proxy(program: Program) -> Proxy:
    """ws → WebSocket; sse → long-lived unbuffered streams; browser → static; cors → headers."""
    websocket = any(s.websockets for s in program.servers)
    sse_paths: list[str] = []
    sse = False
    for server in program.servers:
        for decl in server.sse:
            sse = True
            if decl.path is not None:
                if not SSE_PATH_RE.match(decl.path):
                    raise ConfigError(f"sse path {decl.path!r} is not a plain URL path", loc=decl.loc)
                if decl.path not in sse_paths:
                    sse_paths.append(decl.path)
    origins: list[str] = []
    for sec in program.securities:
        for v in sec.cors_origins:
            if v.kind != "string" or not ORIGIN_RE.match(str(v.value)):
                raise ConfigError(
                    f"cors origin `{v.text}` is not an origin tova-deploy can put in Caddy's config",
                    hint='write literal origins such as "https://app.example.com" or "*"',
                    loc=v.loc,
                )
            if v.value not in origins:
                origins.append(str(v.value))
    return Proxy(
        websocket=websocket,
        sse=sse,
        sse_paths=tuple(sse_paths),
        static=bool(program.browsers),
        cors_origins=tuple(origins),
    )


def _with_public(proxy: Proxy, project_root: str | Path | None) -> Proxy:
    """The project's public/ is served beside the browser build."""
    if proxy.static or project_root is None or not (Path(project_root) / "public").is_dir():
        return proxy
    return replace(proxy, static=True)


def infer_secrets(program: Program, engines: set[str]) -> Secrets:
    """security auth → its env("X") names (JWT_SECRET for jwt even when unspelled)."""
    required: list[str] = []
    for sec in program.securities:
        for auth in sec.auths:
            names = list(auth.env_refs)
            if auth.kind == "jwt":
                names.append("JWT_SECRET")
            for n in names:
                if n not in PROVIDED_ENV and n not in required:
                    required.append(n)
    auto = [name for engine, name in (("postgres", "DATABASE_URL"), ("mysql", "DATABASE_URL"),
                                      ("redis", "REDIS_URL")) if engine in engines]
    return Secrets(required=tuple(required), auto=tuple(auto))


def infer_data_files(program: Program, root: str | Path) -> tuple[str, ...]:
    """data { source x = read("relative/path") } → files uploaded to data/; URLs stay remote."""
    files: list[str] = []
    for data in program.datas:
        for src in data.sources:
            path = src.path
            if path is None or re.match(r"^[a-z][a-z0-9+.-]*://", path):
                continue
            clean = check_relative_path(path, src.loc, f"data source {src.name}")
            if not (Path(root) / clean).is_file():
                raise ConfigError(
                    f"data source {src.name} reads {path!r}, which is not in the project",
                    hint=f"add the file at {clean} (relative to the project root) or read it from a URL",
                    loc=src.loc,
                )
            if clean not in files:
                files.append(clean)
    return tuple(files)
