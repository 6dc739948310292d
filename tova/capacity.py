"""What an app asks of a server, for `--plan` (pure): the apps' memory limits against the
server's RAM, and what the first provisioning of a fresh server costs in disk and time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tova.manifest import Manifest
from tova.units import format_bytes

MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryCommit:
    committed: int  # the sum of every app's limit (all its instances), this one's included
    this_app: int
    total: int | None  # the server's RAM, when known

    @property
    def over(self) -> bool:
        return self.total is not None and self.committed > self.total

    def warning(self) -> str | None:
        if not self.over:
            return None
        assert self.total is not None
        return (f"⚠ Memory over-committed: the apps' memory limits add up to {format_bytes(self.committed)} "
                f"(this app {format_bytes(self.this_app)}) on a server with {format_bytes(self.total)} of RAM; "
                "lower `memory` or `instances`, or use a larger server")


def memory_commit(manifest: Manifest, apps: list[dict[str, Any]], total: int | None) -> MemoryCommit:
    """`apps` as `tova-release apps --json` lists them; this app's own row is replaced by
    what the manifest asks for."""
    mine = manifest.memory_bytes * manifest.instances
    others = sum(a.get("memory_limit_bytes") or 0 for a in apps if a.get("app") != manifest.app)
    return MemoryCommit(others + mine, mine, total)


@dataclass(frozen=True)
class Component:
    label: str
    disk_bytes: int
    seconds: int


# Measured on a fresh Debian 12 server (the test server: minbase + python3, 2 busy shared
# cores): disk as `du` of /usr, /var and /etc grew, time as each provisioning step took
# (apt-get update included). Download speed changes the time most.
COMPONENTS = {
    "caddy": Component("Caddy, UFW", 60 * MB, 10),
    "bun": Component("Node.js and npm, then Bun", 430 * MB, 115),
    "postgresql": Component("PostgreSQL", 250 * MB, 45),
    "redis": Component("Redis", 6 * MB, 10),
}


@dataclass(frozen=True)
class FirstProvisioning:
    parts: tuple[Component, ...]

    @property
    def disk_bytes(self) -> int:
        return sum(p.disk_bytes for p in self.parts)

    @property
    def seconds(self) -> int:
        return sum(p.seconds for p in self.parts)

    def line(self) -> str | None:
        if not self.parts:
            return None
        what = ", ".join(p.label for p in self.parts)
        return (f"First provisioning of this server: about {format_bytes(self.disk_bytes)} of disk and "
                f"{_minutes(self.seconds)} ({what})")


def first_provisioning(manifest: Manifest, installed: frozenset[str]) -> FirstProvisioning:
    """What the system and databases layers would install, given what the server has."""
    wanted = ["caddy", "bun"]
    engines = {db.engine for db in manifest.databases}
    wanted += [name for name, engine in (("postgresql", "postgres"), ("redis", "redis")) if engine in engines]
    return FirstProvisioning(tuple(COMPONENTS[n] for n in wanted if n not in installed))


def _minutes(seconds: int) -> str:
    if seconds < 90:
        return f"{max(seconds, 1)} s"
    return f"{round(seconds / 60)} min"
