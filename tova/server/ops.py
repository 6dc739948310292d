"""The other server operations behind `tova-release`: rollback, secrets, status, listing,
removal. Each returns data; tova.server.cli prints it."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from tova.errors import EXIT_FAILED, EXIT_REMOTE, EXIT_USAGE, DeployError, TovaError
from tova.layout import AppLayout, Layout
from tova.manifest import LAYERS, MANIFEST_FILE
from tova.progress import Out
from tova.server import envfile, history, releases
from tova.server.atomic import write_atomic
from tova.server.locks import deploy_lock
from tova.server.registry import IN_FLIGHT, Registry, free_app
from tova.server.repair import diagnose, last_repair
from tova.server.rollout import report_failure, restart_all, switch_to
from tova.server.system import System
from tova.server.usage import dir_bytes
from tova.settings import ServerSettings, settings_layers


@dataclass
class ServerOps:
    settings: ServerSettings
    layout: Layout
    system: System

    @property
    def registry(self) -> Registry:
        return Registry(self.layout, self.settings.first_port, self.settings.lock_wait)

    def resolve_app(self, app: str | None) -> AppLayout:
        """An explicit app, or the only app on this server."""
        if app:
            a = self.layout.app(app)
            if not a.dir.is_dir():
                raise TovaError(f"no app {app!r} on this server", exit_code=EXIT_REMOTE,
                                hint="set it up from its project with: tova deploy ENV --setup-git")
            return a
        names = sorted(p.name for p in self.layout.apps_dir.glob("*") if p.is_dir()) \
            if self.layout.apps_dir.is_dir() else []
        if len(names) == 1:
            return self.layout.app(names[0])
        raise TovaError("which app?" if names else "no apps on this server",
                        hint="name the app: " + ", ".join(names) if names else "deploy one first",
                        exit_code=EXIT_USAGE if names else EXIT_REMOTE)

    def ports(self, app: AppLayout) -> list[int]:
        entry = self.registry.app(app.name) or {}
        return list(entry.get("ports", []))

    def app_env(self, app: AppLayout) -> str:
        try:
            value = Repo(str(app.repo)).get_config().get((b"tova",), b"env")
            return value.decode()
        except (KeyError, OSError, ValueError, NotGitRepository):  # no repo or no tova.env: fall back
            m = releases.current_manifest(app)
            return m.env if m else "prod"

    # --- rollback ------------------------------------------------------------------
    def rollback(self, app: AppLayout, to: str | None, out: Out) -> str:
        with deploy_lock(app, self.settings.lock_wait, what="rollback"):
            current = app.current_version()
            if to:
                target = releases.get(app, to)
                if target is None:
                    raise TovaError(f"no release {to} of {app.name}",
                                    hint="list them with: tova-release releases " + app.name)
            else:
                target = releases.previous_good(app, current)
                if target is None:
                    raise TovaError(f"{app.name} has no earlier successful release to roll back to",
                                    hint="list them with: tova-release releases " + app.name, exit_code=EXIT_FAILED)
            if target.version == current:
                raise TovaError(f"{target.version} is already the current release", hint="nothing to do")
            manifest = releases.read_manifest(target.path)
            if manifest is None:
                raise DeployError(f"release {target.version} has no readable {MANIFEST_FILE}",
                                  hint="choose another release with --to")
            start = time.time()
            out.line(f"Rolling back {app.name} to {target.version}: its build and its health, env and "
                     "proxy settings; the instance count, data/, secrets and databases stay as they are")
            live = releases.current_manifest(app)
            failure = switch_to(target.version, current, self.system, app, manifest, self.settings,
                                self.registry, out, live=live)
            meta = target.meta()
            history.append(app.history, {
                "version": target.version, "commit": meta.get("commit"), "branch": meta.get("branch"),
                "start": start, "end": time.time(),
                "outcome": "rollback" if failure is None else "rollback_unhealthy",
                "step": None, "infra_changed": [], "rolled_back_from": current})
            if failure is not None:
                report_failure(out, app.name, manifest, failure)
                raise DeployError(f"{target.version} is not healthy ({failure.unit(app.name)}: "
                                  f"{failure.result.detail}); {current or 'the current release'} keeps serving",
                                  hint=f"run `tova deploy {self.app_env(app)} --logs` to investigate")
            out.line()
            out.line(f"{out.ok_mark} Rolled back to {target.version}")
            return target.version

    # --- secrets -------------------------------------------------------------------
    def env_set(self, app: AppLayout, values: dict[str, str], out: Out) -> list[str]:
        with deploy_lock(app, self.settings.lock_wait, what="env set"):
            before = _read_bytes(app.env_file)
            names = envfile.set_values(app.env_file, values)
            out.info("Set " + ", ".join(names))
            self._restart_if_deployed(app, out, before)
            return names

    def env_unset(self, app: AppLayout, keys: list[str], out: Out) -> list[str]:
        for k in keys:
            envfile.check_key(k)
        with deploy_lock(app, self.settings.lock_wait, what="env unset"):
            before = _read_bytes(app.env_file)
            removed = envfile.unset(app.env_file, keys)
            out.info("Removed " + (", ".join(removed) if removed else "nothing (not set)"))
            if removed:
                self._restart_if_deployed(app, out, before)
            return removed

    def _restart_if_deployed(self, app: AppLayout, out: Out, before: bytes | None) -> None:
        """New instances with the new values beside the old; if they fail, the old values
        come back and the old instances, which never stopped, keep serving."""
        manifest = releases.current_manifest(app)
        if manifest is None or not self.ports(app):
            out.info("Not deployed yet: the next deploy starts the app with these values")
            return
        out.begin("Starting new instances with the new values...")
        _, failure = restart_all(self.system, app, manifest, self.settings, self.registry)
        out.end(failure is None)
        if failure is not None:
            report_failure(out, app.name, manifest, failure)
            if before is not None:
                write_atomic(app.env_file, before, mode=0o600)
            raise DeployError(f"{failure.unit(app.name)} is not healthy with the new values: "
                              f"{failure.result.detail}; the previous values are back and still serving",
                              hint=f"run `tova deploy {manifest.env} --logs` to investigate")

    # --- inspection ----------------------------------------------------------------
    def releases(self, app: AppLayout) -> list[dict[str, Any]]:
        current = app.current_version()
        out = []
        for r in reversed(releases.listing(app)):
            meta = r.meta()
            status = "current" if r.version == current else ("failed" if r.failed else "ok")
            out.append({"version": r.version, "commit": meta.get("commit"), "status": status,
                        "time": meta.get("time")})
        return out

    @staticmethod
    def problems(app: AppLayout, entry: dict[str, Any]) -> list[str]:
        """What does not add up on the server (a release deleted by hand, a deploy killed
        between switching and recording): each one line, for status to say."""
        found = []
        current = app.current_version()
        if app.current.is_dir() and not app.current.is_symlink():
            found.append(f"{app.current} is a directory, not the link to a release")
        elif current is not None and not app.release(current).is_dir():
            found.append(f"current points at releases/{current}, which does not exist")
        interrupted = diagnose(app, entry)  # left when the deploy lock was busy: see repair.py
        if interrupted is not None:
            found += [f"{line} (an interrupted change, repaired once the deploy lock is free)"
                      for line in interrupted.found]
        return found

    def status(self, app: AppLayout) -> dict[str, Any]:
        manifest = releases.current_manifest(app)
        entry = self.registry.app(app.name) or {}
        ports = list(entry.get("ports", []))
        meta = releases.read_meta(app.current) if app.current_version() else {}
        return {
            "problems": self.problems(app, entry),
            "app": app.name,
            "env": entry.get("env") or (manifest.env if manifest else self.app_env(app)),
            "domain": entry.get("domain"),
            "ports": ports,
            "version": app.current_version(),
            "commit": meta.get("commit"),
            "branch": meta.get("branch"),
            "dependencies": meta.get("dependencies") or {},  # npm packages installed in the release
            "toolchain": meta.get("toolchain") or {},  # the compiler and Bun versions that built it
            # config.toml as the live release was provisioned with it (tls in force, ...), and
            # the layers the next deploy provisions again because config.toml changed since.
            "settings": meta.get("settings") or {},
            "settings_changed": [name for name in LAYERS
                                 if name in settings_layers(meta.get("settings"), self.settings)],
            "manifest": manifest.to_dict() if manifest else None,
            "instances": [self.system.instance_info(app, p) for p in ports],
            "databases": self.system.databases(manifest),
            "certificate": self.system.certificate(entry.get("domain") or (manifest.domain if manifest else ""))
            if (entry.get("domain") or manifest) else None,
            "last_deploy": history.last(app.history),
            "repaired": last_repair(history.read(app.history)),  # what the last repair found and did
            "releases_kept": len(releases.listing(app)),
            "keep_releases": manifest.keep_releases if manifest else 5,
        }

    def apps(self) -> dict[str, Any]:
        data = self.registry.read()
        rows = []
        for name, entry in sorted(data["apps"].items()):
            a = self.layout.app(name)
            ports = list(entry.get("ports", []))
            infos = [self.system.instance_info(a, p) for p in ports]
            running = sum(1 for i in infos if i.get("state") in ("active", "running"))
            state = "running" if ports and running == len(ports) else ("degraded" if running else "stopped")
            used = [i["memory_bytes"] for i in infos if i.get("memory_bytes") is not None]
            manifest = releases.current_manifest(a)
            rows.append({"app": name, "domain": entry.get("domain"), "version": a.current_version(),
                         "instances": len(ports), "ports": ports, "state": state,
                         "memory_bytes": sum(used) if used else None,
                         "memory_limit_bytes": manifest.memory_bytes * len(ports) if manifest else None,
                         "disk_bytes": dir_bytes(a.dir) if a.dir.is_dir() else None})
        disk = shutil.disk_usage(self.layout.root if self.layout.root.exists() else "/")
        return {"apps": rows, "memory": _memory(), "disk": {"used": disk.used, "total": disk.total},
                "services": {s: self.system.service_state(u) for s, u in
                             (("postgresql", "postgresql"), ("redis", "redis-server"), ("caddy", "caddy"))}}

    # --- removal -------------------------------------------------------------------
    def remove(self, app: AppLayout, out: Out) -> dict[str, Any]:
        with deploy_lock(app, self.settings.lock_wait, what="remove"):
            manifest = releases.current_manifest(app)
            # With the instances a rollout killed half-way left starting or retiring, if any.
            entry = self.registry.app(app.name) or {}
            ports = self.ports(app) + [p for key in IN_FLIGHT for p in entry.get(key, [])]
            # Database dumps and app data: root's alone.
            self.layout.archive_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.layout.archive_dir, 0o700)
            archive = _new_dir(self.layout.archive_dir / app.name / time.strftime('%Y%m%d-%H%M%S'))
            out.line(f"Removing {app.name}...")
            for done in self.system.remove_app(app, ports, manifest, archive):
                out.sub(done, True)
            # Releases are rebuilt from the repository; everything else is kept.
            shutil.rmtree(app.releases, ignore_errors=True)
            shutil.rmtree(app.build_dir, ignore_errors=True)
            app.current.unlink(missing_ok=True)
            shutil.move(str(app.dir), str(archive / "app"))
            out.sub(f"Archive data to {archive}", True)
            with self.registry.transaction() as data:
                freed = free_app(data, app.name, self.settings.first_port)
            if freed:
                out.sub("Release ports " + ", ".join(map(str, freed)), True)
            out.line()
            out.line(f"{out.ok_mark} Removed (data archived, not deleted)")
            return {"archive": str(archive), "ports_freed": freed}


def _new_dir(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`...: an app removed twice within a second (set up
    again in between) keeps both archives."""
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir(mode=0o700, parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _memory() -> dict[str, Any]:
    info = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {"used": None, "total": None}
    total = info.get("MemTotal")
    avail = info.get("MemAvailable")
    return {"used": total - avail if total and avail is not None else None, "total": total}
