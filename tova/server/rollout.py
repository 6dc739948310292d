"""Changing which instances serve an app, for a deploy, a rollback and an `env set`:
start new instances of the release `current` points at on ports of their own, beside the
live ones; check them directly; only then point Caddy at them (no reload: see
tova.server.upstreams); then let the old ones drain and stop. A release that never
becomes healthy never receives a user request, and the old one serves throughout."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

from tova.layout import AppLayout
from tova.manifest import Manifest, probe_path
from tova.naming import unit
from tova.progress import Out, OutputLines
from tova.server.atomic import flip_symlink, write_atomic
from tova.server.faults import fault_point
from tova.server.health import HealthResult, wait_for
from tova.server.netstat import listening_ports
from tova.server.registry import Registry, fresh_ports
from tova.server.system import System
from tova.server.upstreams import REFRESH_MS
from tova.settings import ServerSettings

# After the switch: Caddy re-reads the upstreams within REFRESH_MS; requests it already
# sent to the old instances finish while they drain. (0.15 s: after live, so not part of
# a push's time to it.)
SWITCH_WAIT = REFRESH_MS / 1000 * 6
# Seconds between checks of a starting instance (a refused connection on loopback costs
# next to nothing): it goes live at most this much after it listens.
START_POLL = 0.01


@dataclass(frozen=True)
class Failure:
    """The first new instance that failed its check, with what it last logged."""

    port: int
    result: HealthResult
    journal: list[str] = field(default_factory=list)

    def unit(self, app: str) -> str:
        return unit(app, self.port)


def restart_all(system: System, app: AppLayout, manifest: Manifest, settings: ServerSettings,
                registry: Registry) -> tuple[list[int], Failure | None]:
    """Roll the app onto the release `current` points at: the new ports, and the first
    failure (then the live instances are untouched and keep serving).

    The registry names what is in flight, for the next command to clean up after a
    rollout killed half-way (tova.server.repair): `starting` the new instances until they
    serve, `retiring` the old ones until they are stopped."""
    started = time.time()
    with registry.transaction() as data:
        entry = data["apps"].setdefault(app.name, {})
        serving = list(entry.get("ports", []))
        stale = [p for p in entry.pop("starting", []) if p not in serving]
        # Old instances a killed rollout left running retire with the serving ones.
        old = serving + [p for p in entry.pop("retiring", []) if p not in serving and p not in stale]
        if old != serving:
            entry["retiring"] = [p for p in old if p not in serving]
        new = fresh_ports(data, manifest.instances, settings.first_port, ports_in_use(manifest))
        entry["starting"] = new  # so a rollout that dies here is cleaned up by the next one
    system.stop_instances(app, stale)
    failure = _start_checked(system, app, new, manifest, settings, started)
    fault_point("instances-started")
    retired = [p for p in old if p not in new]
    with registry.transaction() as data:
        entry = data["apps"].setdefault(app.name, {})
        entry.pop("starting", None)
        if failure is None:
            entry["ports"] = new
            entry["instances"] = len(new)
            if retired:
                entry["retiring"] = retired
    if failure is not None:
        return serving, failure
    system.set_upstreams(app, new)
    fault_point("upstreams-switched")
    if old:
        time.sleep(SWITCH_WAIT)
    system.commit_instances(app, new, retired)
    if retired:
        with registry.transaction() as data:
            data["apps"].get(app.name, {}).pop("retiring", None)
    return new, None


def ports_in_use(m: Manifest) -> set[int]:
    """Ports a new instance must not take: whatever listens now, and the ports of the
    databases this app declares (their server may not be installed yet)."""
    db_ports = {db.port for db in m.databases if db.port}
    return listening_ports() | db_ports


def _start_checked(system: System, app: AppLayout, ports: list[int], manifest: Manifest,
                   settings: ServerSettings, started: float) -> Failure | None:
    system.start_instances(app, ports)
    for port in ports:  # they start together; the later checks mostly pass at once
        result = wait_for(port, manifest.health, settings.startup_deadline,
                          alive=partial(system.instance_running, app, port), interval=START_POLL)
        if not result.ok:
            journal = system.journal_tail(app, port, started)
            system.stop_instances(app, ports)
            return Failure(port, result, journal)
    return None


def report_failure(out: Out, app: str, manifest: Manifest, failure: Failure) -> None:
    """Say why: the check that failed, then the failing instance's last journal lines."""
    out.step(f"Health check {probe_path(manifest.health)}...", False, "FAILED")
    out.sub(f"{failure.unit(app)}: {failure.result.detail}")
    if failure.journal:
        out.sub(f"Last lines of {failure.unit(app)}:")
        for line in failure.journal:
            out.line(" " * 11 + "│ " + line)


def switch_to(version: str, was: str | None, system: System, app: AppLayout, manifest: Manifest,
              settings: ServerSettings, registry: Registry, out: Out,
              live: Manifest | None = None) -> Failure | None:
    """Point `current` at an existing release, roll onto it and record it as the app's
    version: the shared part of an automatic and a manual rollback. On failure `current`
    points back at `was`, whose instances kept serving. `live` is the manifest the server
    is provisioned for now: where the release's proxy or services settings differ (its
    env, memory, health check), those layers are provisioned for it first."""
    flip_symlink(app.current, app.current_target(version))
    out.sub(f"current → {app.current_target(version)} (was {was or 'none'})", True)
    fault_point("current-flipped")
    reprovision(system, app, manifest, settings, registry, out, live)
    _, failure = restart_all(system, app, manifest, settings, registry)
    out.sub("New instances started, checked and serving" if failure is None
            else "New instances failed their health check", failure is None)
    if failure is not None:
        if was:
            flip_symlink(app.current, app.current_target(was))
        return failure
    with registry.transaction() as data:
        if app.name in data["apps"]:
            data["apps"][app.name]["version"] = version
    return None


ROLLBACK_LAYERS = ("proxy", "services")  # what a release's own settings decide


def reprovision(system: System, app: AppLayout, manifest: Manifest, settings: ServerSettings,
                registry: Registry, out: Out, live: Manifest | None) -> None:
    from tova.manifest import changed_layers

    if live is None:
        return
    layers = [name for name in changed_layers(live, manifest) if name in ROLLBACK_LAYERS]
    if not layers:
        return
    from tova.render import render_all  # jinja2: only when there is something to render

    ports = list((registry.app(app.name) or {}).get("ports", []))
    write_atomic(app.provision_script, render_all(manifest, ports, settings)["provision.sh"], mode=0o700)
    rc = system.provision(app.provision_script, layers, OutputLines(out))
    out.sub("Provisioned " + ", ".join(layers) + " for that release", rc == 0)


