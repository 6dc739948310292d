"""The client's screens (design sections 5 and 7): pure functions from the server's JSON
replies to text. Missing fields show as "—" rather than failing: the server may be a
different toolkit version."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tova.units import format_bytes

RULE = "─" * 46
DASH = "—"


def dot(state: str | None) -> str:
    return "●" if state in ("running", "active", "ok", "valid", "healthy") else "○"


def human_bytes(n: int | float | None) -> str:
    return DASH if n is None else format_bytes(n)


def duration(seconds: float | None, *, long: bool = False) -> str:
    if seconds is None:
        return DASH
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if long:
        parts = []
        if d:
            parts.append(f"{d} day{'s' if d != 1 else ''}")
        if h:
            parts.append(f"{h} hour{'s' if h != 1 else ''}")
        if not d and (m or not parts):
            parts.append(f"{m} minute{'s' if m != 1 else ''}")
        return ", ".join(parts)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s"


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return DASH
    stamp = datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    ago = now - ts
    rel = "just now" if ago < 60 else f"{duration(ago, long=True).split(',')[0]} ago"
    return f"{stamp} ({rel})"


RUNNING = ("running", "active")


def _db_details(db: dict[str, Any]) -> str:
    """The design's `myapp_db   size: 24 MB` / `keys: 1,204   mem: 18 MB` / SQLite files."""
    parts = []
    if db.get("engine") in ("postgres", "mysql") and db.get("name"):
        parts.append(str(db["name"]))
    if db.get("size_bytes") is not None:
        parts.append(f"size: {human_bytes(db['size_bytes'])}")
    if db.get("keys") is not None:
        parts.append(f"keys: {db['keys']:,}")
    if db.get("memory_bytes") is not None:
        parts.append(f"mem: {human_bytes(db['memory_bytes'])}")
    if db.get("paths"):
        parts.append("files: " + ", ".join(db["paths"]))
    return "   ".join(parts)


def status_screen(s: dict[str, Any], now: float | None = None) -> str:
    """`tova deploy <env> --status`. Input: `tova-release status APP --json`."""
    now = time.time() if now is None else now
    instances = s.get("instances") or []
    healthy = [i for i in instances if i.get("state") in RUNNING]
    state = "running" if instances and len(healthy) == len(instances) else ("degraded" if healthy else "stopped")
    if not s.get("version"):
        state = "not deployed"
    domain = s.get("domain")
    lines = [f"  {s.get('app', '?')} — https://{domain}" if domain else f"  {s.get('app', '?')}", f"  {RULE}"]
    version = f" ({s['version']})" if s.get("version") else ""
    lines.append(f"  Status:     {dot('running' if state == 'running' else None)} {state}{version}")
    uptimes = [i.get("uptime_seconds") for i in healthy if i.get("uptime_seconds") is not None]
    if uptimes:
        lines.append(f"  Uptime:     {duration(max(uptimes), long=True)}")
    lines.append(f"  Instances:  {len(healthy)}/{len(instances)} healthy")
    if instances:
        lines.append("")
        for i in instances:
            cpu = i.get("cpu_percent")
            cpu_s = f"{cpu:.1f}%" if isinstance(cpu, (int, float)) else DASH
            shown = "running" if i.get("state") in RUNNING else i.get("state", "?")
            lines.append(
                f"    @{i.get('port', '?'):<6} {dot(i.get('state'))} {shown:<9} "
                f"mem: {human_bytes(i.get('memory_bytes')):<8} cpu: {cpu_s:<6} "
                f"uptime: {duration(i.get('uptime_seconds'))}"
            )
    dbs = s.get("databases") or []
    if dbs:
        lines += ["", "  Database:"]
        for db in dbs:
            label = {"postgres": "PostgreSQL", "mysql": "MariaDB", "redis": "Redis", "sqlite": "SQLite"}.get(
                db.get("engine"), db.get("engine", "?")
            )
            state = "running" if db.get("state") in RUNNING else db.get("state", "?")
            lines.append(f"    {label:<11} {dot(db.get('state'))} {state:<9} {_db_details(db)}".rstrip())
    lines += _dependencies_lines(s.get("dependencies") or {})
    lines += _toolchain_lines(s.get("toolchain") or {})
    lines += _ssl_lines(s.get("certificate"), domain, bool(s.get("version")), now)
    lines += ["", _last_deploy_line(s.get("last_deploy"), now)]
    kept = s.get("releases_kept")
    keep = s.get("keep_releases")
    if kept is not None:
        lines.append(f"  Releases:     {kept}" + (f" (keeping last {keep})" if keep else ""))
    return "\n".join(lines)


def _dependencies_lines(deps: dict[str, str]) -> list[str]:
    """The release's npm packages and their installed versions."""
    if not deps:
        return []
    return ["", "  Dependencies: " + ", ".join(f"{name} {version}" for name, version in sorted(deps.items()))]


def _toolchain_lines(tc: dict[str, Any]) -> list[str]:
    """The compiler and Bun versions the live release was built with."""
    if not tc.get("compiler"):
        return []
    return [f"  Built with:   Tova compiler {tc['compiler']}, Bun {tc.get('bun') or '?'}"]


def _memory_of(app: dict[str, Any]) -> str:
    """Used / limit of all the app's instances: "31 MB / 128 MB"."""
    used = human_bytes(app.get("memory_bytes"))
    limit = app.get("memory_limit_bytes")
    return used if limit is None else f"{used} / {human_bytes(limit)}"


def _ssl_lines(cert: dict[str, Any] | None, domain: str | None, deployed: bool, now: float) -> list[str]:
    if not cert:
        if not (domain and deployed):
            return []
        return ["", "  SSL:", f"    {domain}   ○ no certificate yet: Caddy gets one on the first HTTPS",
                "    request once the domain's DNS points to this server (tls internal: from its local CA)"]
    expires = (cert.get("expires") or DASH)[:10]  # the date is what matters
    days = f" ({_time_left(cert, now)})" if cert.get("days_left") is not None else ""
    return ["", "  SSL:", f"    {cert.get('domain', domain)}   {dot(cert.get('state'))} {cert.get('state', '?')}   "
            f"expires: {expires}{days}"]


def _last_deploy_line(last: dict[str, Any] | None, now: float) -> str:
    """When, and for a deploy that did not go live, how far it got and why."""
    if not last:
        return "  Last deploy:  never"
    outcome = last.get("outcome", "?")
    suffix = "" if outcome == "ok" else f" — {outcome}"
    if outcome != "ok" and last.get("step"):
        suffix += f" at step {last['step']}"
    if outcome != "ok" and last.get("error"):
        suffix += f": {last['error']}"
    if last.get("found"):  # a repair after an interrupted deploy (tova.server.repair)
        suffix += ": found " + "; ".join(last["found"]) + "; " + "; ".join(last.get("done") or [])
    return f"  Last deploy:  {_when(last.get('end') or last.get('start'), now)}{suffix}"


def _time_left(cert: dict[str, Any], now: float) -> str:
    """`89 days`, or hours for short-lived certificates (Caddy's local CA: 12 hours)."""
    days = cert.get("days_left")
    if isinstance(days, int) and days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    try:
        hours = (datetime.fromisoformat(str(cert.get("expires"))).timestamp() - now) / 3600
    except ValueError:
        return f"{days} days"
    if hours <= 0:
        return "expired"
    return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''}" if hours >= 1 else "under an hour"


def overview_screen(host: str, d: dict[str, Any]) -> str:
    """`tova deploy --list --server X`. Input: `tova-release apps --json`."""
    apps = d.get("apps") or []
    lines = [f"  Apps on {host}", f"  {RULE}"]
    if not apps:
        lines.append("  (no apps)")
    w_app = max([len(a.get("app", "")) for a in apps] + [5])
    w_dom = max([len(a.get("domain") or "") for a in apps] + [6])
    for a in apps:
        n = a.get("instances") or 0
        inst = f"{n} instance" + ("" if n == 1 else "s")
        state = a.get("state") or "unknown"
        lines.append(
            f"  {a.get('app', '?'):<{w_app}}   {a.get('domain') or DASH:<{w_dom}}   "
            f"{a.get('version') or DASH:<4} {inst:<13} {dot(state)} {state:<8}  "
            f"mem: {_memory_of(a):<17} disk: {human_bytes(a.get('disk_bytes'))}"
        )
    services = d.get("services") or {}
    if services:
        names = {"postgresql": "PostgreSQL", "redis": "Redis", "caddy": "Caddy"}
        parts = [
            f"{names.get(k, k)} {dot(v)}" for k, v in services.items() if v not in (None, "absent", "not-installed")
        ]
        if parts:
            lines += ["", "  Resources: " + "  ".join(parts)]
    for key, label in (("memory", "Memory"), ("disk", "Disk")):
        r = d.get(key) or {}
        if r.get("total"):
            lines.append(f"  {label}: {human_bytes(r.get('used'))} / {human_bytes(r.get('total'))} used")
    return "\n".join(lines)


def removal_screen(app: str, host: str, d: dict[str, Any]) -> str:
    """After `tova-release remove APP --json`: {"archive", "ports_freed", ...}."""
    lines = [f'  Removed "{app}" from {host}']
    ports = d.get("ports_freed") or []
    if d.get("archive"):
        lines.append(f"    → Data archived to {d['archive']}")
    if ports:
        span = f"{ports[0]}" if len(ports) == 1 else f"{min(ports)}-{max(ports)}"
        lines.append(f"    → Released port{'s' if len(ports) > 1 else ''} {span}")
    lines += ["", "  ✓ Removed (data archived, not deleted)"]
    return "\n".join(lines)

