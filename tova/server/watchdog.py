"""The server-wide health watcher, run by tova-health.service as
`python -m tova.server.watchdog` (TOVA_ROOT names the toolkit's root).

One process for every app: it sleeps until the next app is due, asks each of that app's
instances on loopback whether it answers (hourly, and to confirm a failure: the deploy
block's full check), and restarts an instance that fails two checks in a row
(RETRY_DELAY apart). Each tick it also finishes what a killed deploy, rollback or env
change left behind (tova.server.repair). When all is well it runs no subprocess and writes nothing to
the journal; each restart is one journal line. The policy is in tova.server.health."""

from __future__ import annotations

import fcntl
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tova.errors import TovaError
from tova.layout import AppLayout, Layout
from tova.manifest import HealthCheck, probe_path
from tova.naming import unit
from tova.progress import Out
from tova.server.adapters import select_system
from tova.server.health import answers, check, full_check_due, next_check, phase, restart_due
from tova.server.registry import Registry
from tova.server.releases import current_manifest
from tova.server.repair import diagnose, repair_if_needed
from tova.server.system import System
from tova.settings import ServerSettings, load_settings

MAX_SLEEP = 10.0  # new apps in the registry are picked up at least this often


@dataclass(frozen=True)
class Target:
    """One deployed app as the watcher sees it."""

    app: str
    ports: tuple[int, ...]
    health: HealthCheck


def targets(layout: Layout, registry: Registry) -> list[Target]:
    """Deployed apps (a current release with a readable manifest) and their ports."""
    found = []
    for name, entry in sorted(registry.read()["apps"].items()):
        ports = tuple(p for p in entry.get("ports", []) if isinstance(p, int))
        manifest = current_manifest(layout.app(name)) if ports else None
        if manifest is not None:
            found.append(Target(name, ports, manifest.health))
    return found


def deploying(app: AppLayout) -> bool:
    """Whether a deploy, rollback or removal of the app holds its deploy lock now."""
    try:
        fd = os.open(app.deploy_lock, os.O_RDONLY)
    except OSError:
        return False  # no lock file: nothing has ever locked it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock at once
    return False


@dataclass
class Watcher:
    layout: Layout
    system: System
    settings: ServerSettings
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    clock: Callable[[], float] = time.monotonic
    due: dict[str, float] = field(default_factory=dict)
    failures: dict[tuple[str, int], int] = field(default_factory=dict)
    last_full: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        return Registry(self.layout, self.settings.first_port, self.settings.lock_wait)

    def tick(self) -> float:
        """Check every app that is due; return the seconds to sleep until the next one."""
        now = self.clock()
        self.repair()
        apps = {t.app: t for t in targets(self.layout, self.registry)}
        for name in list(self.due):
            if name not in apps:
                del self.due[name]
        current = {(name, port) for name, t in apps.items() for port in t.ports}
        self.failures = {k: v for k, v in self.failures.items() if k in current}
        self.last_full = {k: v for k, v in self.last_full.items() if k in current}
        for name, target in apps.items():
            interval = max(1, target.health.interval)
            if name not in self.due:
                self.due[name] = now + phase(name, interval)
            if self.due[name] <= now:
                began = self.clock()
                failing = self.check(target)
                self.due[name] = next_check(began, interval, failing)
        wake = min(self.due.values(), default=now + MAX_SLEEP)
        return max(0.0, min(MAX_SLEEP, wake - self.clock()))

    def repair(self) -> None:
        """Finish what a killed deploy, rollback or env change left (tova.server.repair):
        the check reads the registry and a link, no subprocess; each repair's lines go
        to the journal."""
        for name, entry in sorted(self.registry.read()["apps"].items()):
            app = self.layout.app(name)
            if diagnose(app, entry) is None:
                continue
            out = Out(io.StringIO())
            out.journal = self.log
            try:
                repair_if_needed(self.settings, self.layout, app, self.system, out)
            except TovaError as err:
                self.log(f"{name}: repair failed: {err.message}")

    def check(self, t: Target) -> bool:
        """Check each instance of one app; True while one of them is failing."""
        app = self.layout.app(t.app)
        failing = False
        for port in t.ports:
            key = (t.app, port)
            now = self.clock()
            if full_check_due(self.last_full.get(key), now, self.failures.get(key, 0)):
                self.last_full[key] = now
                result = check(port, t.health)  # strict or fallback, as the deploy checked
            else:
                result = answers(port, t.health.timeout)
            if result.ok:
                self.failures.pop(key, None)
                continue
            self.failures[key] = self.failures.get(key, 0) + 1
            if self.failures[key] < 2:
                failing = True
                continue
            info = self.system.instance_info(app, port)
            if info.get("state") not in ("active", "running"):
                # Stopped or starting: systemd (Restart=) and the deploy look after it.
                self.failures.pop(key, None)
                continue
            if not restart_due(self.failures[key], info.get("uptime_seconds"),
                               self.settings.startup_deadline, deploying(app)):
                continue
            self.log(f"{unit(t.app, port)}: health check {probe_path(t.health)} failed twice; restarting")
            self.failures.pop(key, None)
            try:
                self.system.restart_instance(app, port)
            except TovaError as err:
                self.log(f"{unit(t.app, port)}: restart failed: {err.message}")
        return failing

    def run_forever(self) -> None:
        while True:
            try:
                delay = self.tick()
            except (OSError, TovaError) as exc:  # e.g. a registry being replaced: next time
                self.log(f"health watcher: {exc}")
                delay = MAX_SLEEP
            time.sleep(delay)


def main() -> int:
    settings = load_settings()
    layout = Layout.of(settings.root)
    Watcher(layout, select_system(layout), settings).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
