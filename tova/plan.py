"""The plan screen and its JSON form, from a Manifest (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from tova.config import DeployConfig
from tova.errors import Location
from tova.lang.program import Program
from tova.manifest import HealthCheck, Manifest
from tova.served import static_lines
from tova.templating import render_template
from tova.units import format_bytes


def ports_text(ports: list[int]) -> str:
    if not ports:
        return "ports assigned by the server"
    if len(ports) == 1:
        return f"port {ports[0]}"
    if ports == list(range(ports[0], ports[0] + len(ports))):
        return f"ports {ports[0]}-{ports[-1]}"
    return "ports " + ",".join(map(str, ports))


def health_view(program: Program, config: DeployConfig, health: HealthCheck,
                where: Callable[[Location], Location] = lambda loc: loc) -> dict[str, Any]:
    """Which check a deploy will use, the route that answers it, or a warning located at
    the deploy block (or at its `health:`) with the remedies. `where` shows locations."""
    from tova.infer import health_route
    from tova.manifest import describe

    route = health_route(program, health.path)
    view: dict[str, Any] = {"check": "fallback" if health.fallback else "strict", "path": health.path,
                  "describe": describe(health), "route": None, "warning": None, "hint": None}
    if route is not None:
        view["route"] = f'GET "{route.path}" at {where(route.loc)}'
        return view
    existing = next((r.path for s in program.servers for r in s.routes
                     if r.method == "GET" and r.path and ":" not in r.path and "*" not in r.path), None)
    example = f'e.g. health: "{existing}"' if existing else 'e.g. health: "/"'
    remedy = (f'add a route: route GET "{health.path}" => healthz with fn healthz() {{ text("ok") }}, '
              f"or set health: to a GET route the app has ({example})")
    if health.fallback:
        loc = config.loc
        view["warning"] = (f'no route answers GET {health.path} (deploy "{config.env}" has no health:); '
                           f"deploys use the fallback check instead")
    else:
        loc = config.locations.get("health", config.loc)
        view["warning"] = (f"no route answers GET {health.path}; an explicit health: is checked "
                           "strictly, so a deploy fails (and rolls back) unless the app answers it with 2xx")
    if loc is not None:
        view["warning"] = f"{where(loc)}: warning: {view['warning']}"
    else:
        view["warning"] = f"warning: {view['warning']}"
    view["hint"] = remedy
    return view


def health_lines(view: dict[str, Any] | None, m: Manifest) -> list[str]:
    """The plan's `Health:` section."""
    every = f"every {m.health.interval}s (timeout {m.health.timeout}s)"
    if view is None:
        return [f"GET {m.health.path} {every}"]
    if view["check"] == "fallback":
        lines = [f"fallback check {every}: no route answers GET {m.health.path}, so each",
                 "instance must accept HTTP and answer GET / without a 5xx"]
    else:
        lines = [f"GET {m.health.path} {every}"]
    if view["route"]:
        lines.append(f"answered by route {view['route']}")
    return lines


def plan_dict(m: Manifest, ports: list[int], bun_version: str, server_view: dict[str, Any] | None,
              health: dict[str, Any] | None = None) -> dict[str, Any]:
    d = m.to_dict()
    d["databases"] = [
        {k: v for k, v in asdict(db).items() if v not in (None, (), [])} for db in m.databases
    ]
    d["external_databases"] = external_databases(m)
    d["ports"] = list(ports)
    d["bun_version"] = bun_version
    d["server_view"] = server_view or {"contacted": False}
    if health is not None:
        d["health_check"] = health
    return d


def external_databases(m: Manifest) -> list[str]:
    """env { } names that point the app at a database the toolkit does not provision."""
    names = dict(m.env_vars)
    return [n for n in ("DATABASE_URL", "REDIS_URL") if n in names]


TLS_NAMES = {"auto": "automatic HTTPS", "internal": "Caddy's local CA"}


def tls_text(mode: str | None, no_settings_file: bool = False) -> str:
    """The Domain line's certificate: the server's tls setting in force. None: no setting
    was read; the default (automatic HTTPS) applies, for sure when the server was asked
    and has no settings file."""
    if mode == "auto":
        return "auto-SSL"
    if mode is None:
        if no_settings_file:
            return 'auto-SSL: tls = "auto", the default, as the server has no config.toml'
        return 'auto-SSL: tls = "auto", the default, unless the server\'s config.toml sets another'
    return f'TLS from {TLS_NAMES.get(mode, mode)}: tls = "{mode}"'


def _proxy_lines(m: Manifest, served: dict[str, Any] | None) -> list[str]:
    proxy_lines: list[str] = []
    if m.proxy.websocket:
        proxy_lines.append("WebSocket → upgrade")
    if m.proxy.sse:
        paths = ", ".join(m.proxy.sse_paths) or "streams"
        proxy_lines.append(f"SSE {paths} → unbuffered")
    if served is not None:
        proxy_lines += static_lines(served["browser"], served["public"], served.get("base") or "/")
    elif m.proxy.static:
        proxy_lines.append("Static: the browser build and public/, served by Caddy")
    if m.proxy.cors_origins:
        proxy_lines.append("CORS: " + ", ".join(m.proxy.cors_origins))
    return proxy_lines


def render_plan(m: Manifest, ports: list[int], bun_version: str, server_lines: list[str],
                health: dict[str, Any] | None = None, tls: str | None = None,
                served: dict[str, Any] | None = None, no_settings_file: bool = False) -> str:
    names = {"bun": f"Bun {bun_version}", "caddy": "Caddy 2", "ufw": "UFW firewall (SSH, 80, 443)",
             "postgresql": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}
    dbs = []
    for db in m.databases:
        if db.engine == "postgres":
            port = f", port {db.port}" if db.port and db.port != 5432 else ""
            dbs.append(f"PostgreSQL ({db.name}{port})")
        elif db.engine == "mysql":
            dbs.append(f"MySQL on MariaDB ({db.name})")
        elif db.engine == "redis":
            mem = f", maxmemory {format_bytes(db.maxmemory_bytes)}" if db.maxmemory_bytes else ""
            dbs.append(f"Redis (keys {m.app}:*{mem})")
        else:
            files = ", ".join(db.paths) if db.paths else "data/"
            dbs.append(f"SQLite ({files})")
    for name in external_databases(m):
        dbs.append(f"external via {name} from env {{ }} (nothing provisioned)")
    proxy_lines = _proxy_lines(m, served)
    secrets = [f"{n} (required)" for n in m.secrets.required] + [f"{n} (auto)" for n in m.secrets.auto]
    upstreams = ",".join(f"localhost:{p}" for p in ports) if ports else "localhost (app ports)"
    return render_template(
        "screens/plan.txt.j2",
        m=m,
        system_line=", ".join(names[s] for s in m.system),
        database_line=", ".join(dbs) or "none",
        ports_text=ports_text(ports),
        tls_text=tls_text(tls, no_settings_file),
        memory_text=format_bytes(m.memory_bytes),
        upstreams=upstreams,
        proxy_lines=proxy_lines,
        secrets_line=", ".join(secrets) or "none",
        env_line=", ".join(f"{k}={v}" for k, v in m.env_vars) or "none",
        server_lines=server_lines,
        health_lines=health_lines(health, m),
        health_warning=[line for line in ((health or {}).get("warning"), (health or {}).get("hint")) if line],
    )
