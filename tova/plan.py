"""The plan screen and its JSON form, from a Manifest (pure)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tova.manifest import Manifest
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


def plan_dict(m: Manifest, ports: list[int], bun_version: str, server_view: dict[str, Any] | None) -> dict[str, Any]:
    d = m.to_dict()
    d["databases"] = [
        {k: v for k, v in asdict(db).items() if v not in (None, (), [])} for db in m.databases
    ]
    d["ports"] = list(ports)
    d["bun_version"] = bun_version
    d["server_view"] = server_view or {"contacted": False}
    return d


def render_plan(m: Manifest, ports: list[int], bun_version: str, server_lines: list[str]) -> str:
    names = {"bun": f"Bun {bun_version}", "caddy": "Caddy 2", "ufw": "UFW firewall (SSH, 80, 443)",
             "postgresql": "PostgreSQL", "redis": "Redis"}
    dbs = []
    for db in m.databases:
        if db.engine == "postgres":
            port = f", port {db.port}" if db.port and db.port != 5432 else ""
            dbs.append(f"PostgreSQL ({db.name}{port})")
        elif db.engine == "redis":
            mem = f", maxmemory {format_bytes(db.maxmemory_bytes)}" if db.maxmemory_bytes else ""
            dbs.append(f"Redis (keys {m.app}:*{mem})")
        else:
            files = ", ".join(db.paths) if db.paths else "data/"
            dbs.append(f"SQLite ({files})")
    proxy_lines = []
    if m.proxy.websocket:
        proxy_lines.append("WebSocket → upgrade")
    if m.proxy.sse:
        paths = ", ".join(m.proxy.sse_paths) or "streams"
        proxy_lines.append(f"SSE {paths} → unbuffered")
    if m.proxy.static:
        proxy_lines.append("Static: browser build (/ → index.html, /.tova-out/client.<hash>.js, "
                           "immutable caching) and public/, served by Caddy")
    if m.proxy.cors_origins:
        proxy_lines.append("CORS: " + ", ".join(m.proxy.cors_origins))
    secrets = [f"{n} (required)" for n in m.secrets.required] + [f"{n} (auto)" for n in m.secrets.auto]
    upstreams = ",".join(f"localhost:{p}" for p in ports) if ports else "localhost (app ports)"
    return render_template(
        "screens/plan.txt.j2",
        m=m,
        system_line=", ".join(names[s] for s in m.system),
        database_line=", ".join(dbs) or "none",
        ports_text=ports_text(ports),
        memory_text=format_bytes(m.memory_bytes),
        upstreams=upstreams,
        proxy_lines=proxy_lines,
        secrets_line=", ".join(secrets) or "none",
        env_line=", ".join(f"{k}={v}" for k, v in m.env_vars) or "none",
        server_lines=server_lines,
    )
