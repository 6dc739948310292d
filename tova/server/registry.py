"""registry.json: every app on this server with its ports, domain, instances, version
and environment. Written only under the registry lock, only through write_atomic.

Ports are stable: a new app takes the lowest free block of the size it needs (gaps left
by removed apps are reused), changing an app's instance count grows or shrinks that app's
own list without moving any other app. A free port is one no app holds, no database
conventionally uses (RESERVED_PORTS) and nothing else on the server listens on (`avoid`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tova.errors import ConfigError, LockedError, TovaError
from tova.layout import Layout
from tova.naming import RESERVED_MYSQL_DATABASES, RESERVED_PG_DATABASES
from tova.server import flock
from tova.server.atomic import write_atomic

MAX_PORT = 65535
# Well-known ports of databases and other servers an app may want beside it later (a
# database installed after the app must not find its port taken): never given to an app.
RESERVED_PORTS = frozenset({
    1433,  # SQL Server
    1521,  # Oracle
    2019,  # Caddy's admin endpoint
    3306, 33060,  # MySQL / MariaDB (and the X protocol)
    5432, 5433,  # PostgreSQL (and the usual second cluster)
    5672, 15672,  # RabbitMQ
    5984,  # CouchDB
    6379, 6380,  # Redis (and the usual TLS/second instance)
    7474, 7687,  # Neo4j
    8086,  # InfluxDB
    9042,  # Cassandra
    9200, 9300,  # Elasticsearch / OpenSearch
    11211,  # memcached
    26257,  # CockroachDB
    27017, 27018, 27019,  # MongoDB
    28015,  # RethinkDB
})


# Instances a rollout has in flight (tova.server.rollout): recorded so that the next
# command can clean up after a rollout that was killed.
IN_FLIGHT = ("starting", "retiring")


def empty(first_port: int) -> dict[str, Any]:
    return {"apps": {}, "next_port": first_port}


def used_ports(data: dict[str, Any], except_app: str | None = None) -> set[int]:
    return {
        p
        for name, entry in data["apps"].items()
        if name != except_app
        for p in entry.get("ports", [])
    }


def _free_block(taken: set[int], size: int, first_port: int) -> list[int]:
    """The lowest run of `size` consecutive free ports at or above first_port."""
    start = first_port
    while start + size - 1 <= MAX_PORT:
        block = range(start, start + size)
        clash = [p for p in block if p in taken]
        if not clash:
            return list(block)
        start = max(clash) + 1
    raise TovaError("no free ports left for the app", hint="remove unused apps")


def allocate(data: dict[str, Any], app: str, instances: int, first_port: int,
             avoid: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Give `app` exactly `instances` ports in `data` (mutated) and return them. New ports
    are never in `avoid` (ports in use on the server) nor RESERVED_PORTS; the app's own
    ports stay its own."""
    taken = used_ports(data, except_app=app) | RESERVED_PORTS | set(avoid)
    entry = data["apps"].setdefault(app, {})
    ports: list[int] = list(entry.get("ports", []))
    if not ports:
        ports = _free_block(taken, instances, first_port)
    elif len(ports) > instances:
        ports = ports[:instances]
    else:
        # Grow: prefer the ports right after our last one, else the lowest free ones.
        candidate = ports[-1] + 1
        while len(ports) < instances:
            if candidate > MAX_PORT:
                candidate = first_port
            if candidate not in taken and candidate not in ports and candidate >= first_port:
                ports.append(candidate)
            candidate += 1
    entry["ports"] = ports
    entry["instances"] = instances
    data["next_port"] = max([first_port - 1, *used_ports(data)]) + 1
    return ports


def claim_database(data: dict[str, Any], app: str, engine: str, name: str | None) -> None:
    """Record `name` as the app's `engine` database; refuse a reserved name or one another
    app holds (call under the registry lock: two apps can never both get one name)."""
    entry = data["apps"].setdefault(app, {})
    dbs = entry.setdefault("databases", {})
    if name is None:
        dbs.pop(engine, None)
        return
    reserved = {"postgres": ("PostgreSQL", RESERVED_PG_DATABASES),
                "mysql": ("MariaDB", RESERVED_MYSQL_DATABASES)}.get(engine)
    if reserved and name.lower() in reserved[1]:
        raise ConfigError(f"the database name {name!r} is reserved by {reserved[0]}",
                        hint="name the app's database something else in its deploy block's db { name: ... }")
    for other, e in data["apps"].items():
        if other != app and (e.get("databases") or {}).get(engine) == name:
            raise ConfigError(f"the {engine} database {name!r} already belongs to app {other!r} on this server",
                            hint="name this app's database something else in its deploy block's db { name: ... }")
    dbs[engine] = name


def fresh_ports(data: dict[str, Any], count: int, first_port: int,
                avoid: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """The lowest `count` ports no app serves, is starting on or still retires, never in
    `avoid` (in use on the server) nor RESERVED_PORTS (pure): a rollout starts the new
    instances there, beside the live ones."""
    taken = (used_ports(data) | RESERVED_PORTS | set(avoid)
             | {p for entry in data["apps"].values() for key in IN_FLIGHT for p in entry.get(key, [])})
    ports: list[int] = []
    candidate = first_port
    while len(ports) < count:
        if candidate > MAX_PORT:
            raise TovaError("no free ports left for the app", hint="remove unused apps")
        if candidate not in taken:
            ports.append(candidate)
        candidate += 1
    return ports


def free_app(data: dict[str, Any], app: str, first_port: int) -> list[int]:
    """Remove `app` from `data` (mutated); return the ports it held."""
    entry = data["apps"].pop(app, None)
    data["next_port"] = max([first_port - 1, *used_ports(data)]) + 1
    return list(entry.get("ports", [])) if entry else []


def parse(text: str, source: str, first_port: int) -> dict[str, Any]:
    """registry.json's text as a dict with both top-level keys present; a file that is not
    a registry (bad JSON, or the wrong shape) is a TovaError saying how to restore it."""
    hint = restore_hint(source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TovaError(f"{source} is not valid JSON: {exc}", hint=hint) from exc
    if not isinstance(data, dict):
        raise TovaError(f"{source} is not a registry (a JSON object)", hint=hint)
    data.setdefault("apps", {})
    data.setdefault("next_port", first_port)
    problem = _shape_problem(data)
    if problem:
        raise TovaError(f"{source} is not a registry: {problem}", hint=hint)
    return data


def _shape_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data["apps"], dict):
        return '"apps" is not an object'
    if not isinstance(data["next_port"], int) or isinstance(data["next_port"], bool):
        return '"next_port" is not a number'
    for name, entry in data["apps"].items():
        if not isinstance(entry, dict):
            return f"the entry of app {name!r} is not an object"
        for key in ("ports", *IN_FLIGHT):
            ports = entry.get(key, [])
            if not isinstance(ports, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports):
                what = "ports" if key == "ports" else f"{key} ports"
                return f"the {what} of app {name!r} are not a list of numbers"
        if not isinstance(entry.get("databases", {}), dict):
            return f"the databases of app {name!r} are not an object"
    return None


def backup_path(source: str | Path) -> Path:
    return Path(f"{source}.bak")


def restore_hint(source: str | Path) -> str:
    """How to get a good registry back: the copy kept before the last change, if any."""
    bak = backup_path(source)
    if bak.exists():
        return f"restore the copy kept before the last change: cp {bak} {source}"
    return ("fix it by hand ({\"apps\": {...}, \"next_port\": N}), or move it away and deploy "
            "each app again to rebuild it")


@dataclass
class Registry:
    layout: Layout
    first_port: int = 3000
    lock_wait: float = 30.0

    def read(self) -> dict[str, Any]:
        path = self.layout.registry
        try:
            text = path.read_text()
        except FileNotFoundError:
            return empty(self.first_port)
        return parse(text, str(path), self.first_port)

    def app(self, app: str) -> dict[str, Any] | None:
        entry = self.read()["apps"].get(app)
        return entry if isinstance(entry, dict) else None

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under the registry lock; written only if the block succeeds."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = flock.acquire(self.layout.registry_lock, self.lock_wait)
        except flock.Busy:
            raise LockedError(
                "the server registry is locked by another tova process",
                hint="try again in a moment",
            ) from None
        try:
            data = self.read()
            yield data
            if self.layout.registry.exists():
                # The last good registry (it parsed just now): what restore_hint points at. A
                # convenience copy: not synced itself (two fsyncs per change, three changes on a
                # push's way to live); the registry's own write below syncs the directory.
                write_atomic(backup_path(self.layout.registry), self.layout.registry.read_bytes(), mode=0o600,
                             durable=False)
            write_atomic(self.layout.registry, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)
        finally:
            flock.release(fd)
