"""Bringing an app back to one release after a deploy, rollback or `env set` was killed
mid-change (SIGKILL, a power cut): the next `tova-release` command, deploy or health
watcher tick does it, through `repair_if_needed` (or `repair` where the caller holds the
app's deploy lock already).

`current` always points at a complete release (a release gets its name only once whole,
the link moves in one rename): that is the release to come back to. What an interrupted
rollout left is in the registry: the version recorded last (written only once a rollout
is done) and the instances in flight (`starting`, `retiring`; see tova.server.rollout).
`diagnose` reads just those and the link, cheap enough for every tick of the watcher.
`repair` rolls the instances onto `current`'s release (fresh ones, health-checked, every
leftover stopped), records it, and writes a history record of what it found and did. If
that release fails its check, the release the registry recorded comes back instead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tova.errors import LockedError, TovaError
from tova.layout import AppLayout, Layout
from tova.progress import Out
from tova.server import history, releases
from tova.server.atomic import flip_symlink
from tova.server.locks import deploy_lock
from tova.server.registry import IN_FLIGHT, Registry
from tova.server.rollout import reprovision, restart_all, switch_to
from tova.server.system import System
from tova.settings import ServerSettings

REPAIRED, REPAIR_FAILED = "repaired", "repair_failed"  # history outcomes


@dataclass(frozen=True)
class Diagnosis:
    """What an interrupted change left behind, one line per finding."""

    current: str  # the release to come back to
    recorded: str | None  # the version the registry recorded last
    found: tuple[str, ...]


def _ports(text: str, ports: list[int]) -> str:
    return f"{text} on port{'s' if len(ports) != 1 else ''} {', '.join(map(str, ports))}"


def diagnose(app: AppLayout, entry: dict[str, Any] | None) -> Diagnosis | None:
    """None when the registry entry agrees with `current` and no rollout is in flight, or
    when there is no complete release to come back to (status names that problem)."""
    current = app.current_version()
    if current is None or not app.current.is_symlink() or not app.release(current).is_dir():
        return None
    entry = entry or {}
    recorded = entry.get("version")
    found = []
    if recorded != current:
        found.append(f"the registry recorded {recorded or 'no release'} as live but current is {current}")
    for key, what in zip(IN_FLIGHT, ("new instances left starting", "old instances left running"), strict=True):
        ports = [p for p in entry.get(key, []) if p not in entry.get("ports", [])]
        if ports:
            found.append(_ports(what, ports))
    return Diagnosis(current, recorded, tuple(found)) if found else None


@dataclass(frozen=True)
class Repaired:
    found: tuple[str, ...]
    done: tuple[str, ...]
    live: str | None  # the release serving now (None: the app is stopped)
    ok: bool  # the release `current` pointed at is the one serving

    def summary(self) -> str:
        return f"found {'; '.join(self.found)}; {'; '.join(self.done)}"


def repair(settings: ServerSettings, layout: Layout, app: AppLayout, system: System,
           out: Out) -> Repaired | None:
    """Repair what `diagnose` finds; None when there is nothing to. The caller holds the
    app's deploy lock."""
    registry = Registry(layout, settings.first_port, settings.lock_wait)
    diagnosis = diagnose(app, registry.app(app.name))
    if diagnosis is None:
        return None
    started = time.time()
    target = diagnosis.current
    out.info(f"Repairing {app.name}: an earlier deploy, rollback or env change was interrupted")
    for line in diagnosis.found:
        out.sub(line[0].upper() + line[1:])
    manifest = releases.read_manifest(app.release(target))
    failure = None
    if manifest is not None:
        # A rollback killed right after moving `current` left the units and the Caddy site
        # provisioned for the recorded release: provision what differs, as it would have.
        recorded = releases.get(app, diagnosis.recorded) if diagnosis.recorded else None
        live = releases.read_manifest(recorded.path) if recorded is not None else None
        reprovision(system, app, manifest, settings, registry, out, live)
        ports, failure = restart_all(system, app, manifest, settings, registry)
    if manifest is not None and failure is None:
        with registry.transaction() as data:
            data["apps"].setdefault(app.name, {})["version"] = target
        done = [_ports(f"started {target} (health-checked)", ports) + ", stopped the rest",
                f"recorded {target} in the registry"]
        result = Repaired(diagnosis.found, tuple(done), target, True)
    else:
        why = f"{failure.unit(app.name)}: {failure.result.detail}" if failure else "its manifest is unreadable"
        result = _fall_back(settings, app, system, registry, out, diagnosis, why)
    for line in result.done:
        out.sub(line[0].upper() + line[1:], result.ok)
    meta = releases.read_meta(app.current)
    history.append(app.history, {
        "version": result.live, "commit": meta.get("commit"), "branch": meta.get("branch"),
        "start": started, "end": time.time(), "outcome": REPAIRED if result.ok else REPAIR_FAILED,
        "step": None, "infra_changed": [], "found": list(result.found), "done": list(result.done)})
    return result


def _fall_back(settings: ServerSettings, app: AppLayout, system: System, registry: Registry, out: Out,
               diagnosis: Diagnosis, why: str) -> Repaired:
    """`current`'s release cannot serve: back to the recorded one (its instances may still
    run), or, with none, stop the app as a deploy with nothing to roll back to does."""
    target, recorded = diagnosis.current, diagnosis.recorded
    releases.mark_failed(app.release(target), f"failed its health check after an interrupted change: {why}")
    done = [f"{target} failed its health check ({why})"]
    back = releases.get(app, recorded) if recorded else None
    if back is not None and not back.failed:
        manifest = releases.read_manifest(back.path)
        if manifest is not None:
            failure = switch_to(back.version, target, system, app, manifest, settings, registry, out,
                                live=releases.read_manifest(app.release(target)))
            if failure is None:
                done.append(f"current back to {back.version}, serving again")
                return Repaired(diagnosis.found, tuple(done), back.version, False)
            flip_symlink(app.current, app.current_target(back.version))
            done.append(f"current back to {back.version}, which fails its check too "
                        f"({failure.unit(app.name)}: {failure.result.detail})")
            return Repaired(diagnosis.found, tuple(done), back.version, False)
    entry = registry.app(app.name) or {}
    system.stop_instances(app, [p for key in ("ports", *IN_FLIGHT) for p in entry.get(key, [])])
    with registry.transaction() as data:
        e = data["apps"].setdefault(app.name, {})
        for key in IN_FLIGHT:
            e.pop(key, None)
        e["version"] = None
    app.current.unlink()
    done.append("no earlier release to go back to: the app is stopped")
    return Repaired(diagnosis.found, tuple(done), None, False)


def repair_if_needed(settings: ServerSettings, layout: Layout, app: AppLayout, system: System,
                     out: Out) -> Repaired | None:
    """The check every entry point makes: nothing to do (and no lock taken) when the app
    is consistent. A held deploy lock means a deploy, rollback or env change is under way
    (it repairs under its lock first), so that is left alone."""
    registry = Registry(layout, settings.first_port, settings.lock_wait)
    if diagnose(app, registry.app(app.name)) is None:
        return None
    try:
        with deploy_lock(app, 0, what="repair"):
            return repair(settings, layout, app, system, out)
    except LockedError:
        return None


def repair_all(settings: ServerSettings, layout: Layout, system: System, out: Out) -> None:
    """What every `tova-release` command does first, for each app on the server."""
    try:
        apps = Registry(layout, settings.first_port, settings.lock_wait).read()["apps"]
    except TovaError:
        return  # an unreadable registry: the command says so itself where it needs one
    for name, entry in sorted(apps.items()):
        app = layout.app(name)
        if diagnose(app, entry) is None:
            continue
        try:
            repair_if_needed(settings, layout, app, system, out)
        except TovaError as err:
            out.info(f"Could not repair {name}: {err.message}")


def last_repair(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest history record when it is a repair (no deploy since): for status."""
    if records and records[-1].get("outcome") in (REPAIRED, REPAIR_FAILED):
        return records[-1]
    return None
