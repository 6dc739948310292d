"""SystemdSystem: the System adapter on a real server. Every command it runs comes from
tova/server/host_commands.py (pure argv builders); this module only runs them and reads
their answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tova.errors import EXIT_FAILED, EXIT_USAGE, TovaError
from tova.layout import AppLayout
from tova.manifest import Manifest
from tova.naming import (
    app_user,
    build_user,
    legacy_health_units,
    pg_database,
    pg_role,
    redis_conf,
    redis_dir,
    redis_unit,
    unit_template,
)
from tova.server import host_commands as cmd
from tova.server import upstreams
from tova.server.procstat import process_usage
from tova.server.sandbox import ToolRun, systemd_run_argv
from tova.server.system import System, TextSink
from tova.server.tooling import run_tool

SYSTEMD_DIR = Path("/etc/systemd/system")
# Where Debian's caddy package (user caddy, HOME=/var/lib/caddy) keeps certificates.
CADDY_STORAGE_DIRS = (
    Path("/var/lib/caddy/.local/share/caddy/certificates"),
    Path("/root/.local/share/caddy/certificates"),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, **kw)


def _ids(user: str) -> tuple[int, int] | None:
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


class SystemdSystem(System):
    name = "systemd"

    def _check(self, argv: list[str]) -> None:
        res = _run(argv)
        if res.returncode != 0:
            raise TovaError(f"{' '.join(argv)} failed: {res.stderr.strip() or res.returncode}",
                            hint="see `journalctl -xe` on the server", exit_code=EXIT_FAILED)

    def restart_instance(self, app: AppLayout, port: int) -> None:
        for argv in cmd.restart_instance(app.name, port):
            self._check(argv)

    def stop_instance(self, app: AppLayout, port: int) -> None:
        for argv in cmd.stop_instance(app.name, port):
            _run(argv)  # stopping something already stopped is fine

    def start_instances(self, app: AppLayout, ports: list[int]) -> None:
        if ports:
            self._check(cmd.start_instances(app.name, ports))

    def commit_instances(self, app: AppLayout, serving: list[int], retired: list[int]) -> None:
        for argv in cmd.commit_instances(app.name, serving, retired):
            _run(argv)

    def stop_instances(self, app: AppLayout, ports: list[int]) -> None:
        if ports:
            _run(cmd.stop_instances(app.name, ports))

    def journal_tail(self, app: AppLayout, port: int, since: float, lines: int = 12) -> list[str]:
        time.sleep(0.3)  # journald takes the instance's last writes from its stream a moment later
        res = _run(cmd.instance_journal(app.name, port, since, lines))
        return res.stdout.splitlines()[-lines:] if res.returncode == 0 else []

    def instance_running(self, app: AppLayout, port: int) -> bool:
        return _run(cmd.instance_active(app.name, port)).returncode == 0

    def instance_info(self, app: AppLayout, port: int) -> dict[str, Any]:
        res = _run(cmd.instance_show(app.name, port))
        props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        uptime = None
        start_us = _int(props.get("ActiveEnterTimestampMonotonic"))
        if start_us:
            uptime = max(0, int(time.monotonic() - start_us / 1e6))
        memory = _int(props.get("MemoryCurrent"))
        cpu_ns = _int(props.get("CPUUsageNSec"))
        pid = _int(props.get("MainPID"))
        if (memory is None or cpu_ns is None) and pid:
            # No cgroup accounting here (e.g. in a container): the main process's own figures.
            rss, cpu_s = process_usage(pid)
            memory = memory if memory is not None else rss
            cpu_ns = cpu_ns if cpu_ns is not None else (int(cpu_s * 1e9) if cpu_s is not None else None)
        cpu = round(cpu_ns / 1e9 / uptime * 100, 1) if cpu_ns is not None and uptime else None
        return {"port": port, "state": props.get("ActiveState", "unknown"),
                "memory_bytes": memory, "cpu_percent": cpu, "uptime_seconds": uptime}

    def provision(self, script: Path, layers: list[str], out: TextSink) -> int:
        proc = subprocess.Popen(cmd.provision(script, layers), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
        return proc.wait()

    def logs(self, app: str, ports: list[int], since: str | None, follow: bool) -> int:
        # stdout straight to ours (any length, --follow); stderr read to turn journalctl's
        # "Failed to parse timestamp" into a cause and a remedy.
        proc = subprocess.Popen(cmd.journal(app, ports, since, follow), stderr=subprocess.PIPE)
        err = proc.communicate()[1].decode(errors="replace")
        if proc.returncode != 0 and since and "parse timestamp" in err:
            raise TovaError(f"journalctl cannot read the time {since!r}", exit_code=EXIT_USAGE,
                            hint='e.g. --since -2min, --since "1 hour ago", --since yesterday, '
                                 '--since "2026-01-31 15:00"')
        sys.stderr.write(err)
        return proc.returncode

    def build_owner(self, app: AppLayout) -> tuple[int, int] | None:
        user = build_user(app.name)
        ids = _ids(user)
        if ids is None:
            res = _run(cmd.add_system_user(user))
            ids = _ids(user)
            if ids is None:
                raise TovaError(f"cannot create the build user {user}: {res.stderr.strip()}",
                                hint="pushed code is never built as root; check useradd on the server")
        return ids

    def app_owner(self, app: AppLayout) -> tuple[int, int] | None:
        ids = _ids(app_user(app.name))
        if ids is None:
            raise TovaError(f"the app user {app_user(app.name)} does not exist",
                            hint="provisioning creates it: tova-release provision " + app.name)
        return ids

    def run_tool(self, run: ToolRun, out: Callable[[str], None]) -> int:
        return run_tool(systemd_run_argv(run, self.layout), Path("/"), out)

    def reload_proxy(self) -> None:
        """Graceful reload (Debian's unit reloads with --force, so the app's upstreams
        and their active health checks start afresh). Nothing to do if Caddy is down."""
        if self.service_state("caddy") == "active":
            _run(cmd.reload_service("caddy"))

    def journal(self, line: str) -> None:
        """Deploy output for `journalctl -t tova-deploy` (through syslog's /dev/log)."""
        import syslog

        syslog.openlog("tova-deploy", 0, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_INFO, line)

    def service_state(self, service: str) -> str:
        """systemd's ActiveState, or "absent" when no such unit is installed."""
        res = _run(cmd.service_show(service))
        props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        if props.get("LoadState") == "not-found":
            return "absent"
        return props.get("ActiveState") or "unknown"

    def databases(self, manifest: Manifest | None) -> list[dict[str, Any]]:
        """State of each engine the app uses, with the app's own share of it."""
        out = []
        app = manifest.app if manifest else ""
        for db in (manifest.databases if manifest else ()):
            entry: dict[str, Any] = {"engine": db.engine, "name": db.name}
            if db.engine == "postgres":
                entry["state"] = self.service_state("postgresql")
                res = _run(cmd.pg_database_size(db.name or "", db.port or 5432))
                entry["size_bytes"] = _int(res.stdout.strip()) if res.returncode == 0 else None
            elif db.engine == "mysql":
                entry["state"] = self.service_state("mariadb")
                res = _run(cmd.mariadb_database_size(db.name or ""))
                entry["size_bytes"] = _int(res.stdout.strip()) if res.returncode == 0 else None
            elif db.engine == "redis":
                entry["state"] = self.service_state(redis_unit(app))
                keys = _run(cmd.redis_cli(app, "DBSIZE"))  # the instance is the app's alone
                entry["keys"] = _int(keys.stdout.strip()) if keys.returncode == 0 else None
                info = _run(cmd.redis_cli(app, "INFO", "memory"))
                used = next((line.split(":", 1)[1].strip() for line in info.stdout.splitlines()
                             if line.startswith("used_memory:")), None)
                entry["memory_bytes"] = _int(used)
            else:
                entry["state"] = "file"
                entry["paths"] = list(db.paths)
            out.append(entry)
        return out

    def certificate(self, domain: str) -> dict[str, Any] | None:
        """Expiry of the certificate Caddy keeps for `domain`, read from its storage."""
        from tova.server.certs import find_certificate, parse_openssl_enddate

        cert = find_certificate(CADDY_STORAGE_DIRS, domain)
        if cert is None:
            return None
        res = _run(cmd.certificate_end_date(cert))
        expires = parse_openssl_enddate(res.stdout) if res.returncode == 0 else None
        if expires is None:
            return None
        left = expires - _utcnow()
        return {"domain": domain, "path": str(cert), "issuer_dir": cert.parent.parent.name,
                "expires": expires.isoformat(), "days_left": left.days,
                "state": "valid" if left.total_seconds() > 0 else "expired"}

    def remove_app(self, app: AppLayout, ports: list[int], manifest: Manifest | None, archive: Path) -> list[str]:
        done = []
        for port in ports:
            self.stop_instance(app, port)
        done.append(f"Stop {len(ports)} instance{'s' if len(ports) != 1 else ''}")
        # Per-app health timers exist only on servers provisioned by earlier versions.
        health_service, health_timer = legacy_health_units(app.name)
        _run(cmd.disable_now(health_timer))
        for name in (unit_template(app.name), health_service, health_timer):
            (SYSTEMD_DIR / name).unlink(missing_ok=True)
        _run(cmd.daemon_reload())
        done.append("Remove systemd services")
        self.layout.caddy_app(app.name).unlink(missing_ok=True)
        self.reload_proxy()
        upstreams.remove(self.layout.upstreams_dir, app.name)
        done.append("Remove Caddy config")
        pg = manifest.database("postgres") if manifest else None
        if pg:
            # An inferred database has no name in the manifest: the renderer's default.
            db = pg_database(app.name, pg.name)
            dump = archive / f"{db}.sql"
            with open(_private_new(dump), "w") as f:
                res = subprocess.run(cmd.pg_dump(db, pg.port or 5432), stdout=f, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                # Never drop a database whose dump failed.
                raise TovaError(f"pg_dump {db} failed: {res.stderr.strip()}",
                                hint=f"the app is stopped; dump and drop {db} by hand, then remove again")
            _run(cmd.pg_drop_database(db, pg.port or 5432))
            _run(cmd.pg_drop_role(pg_role(app.name), pg.port or 5432))
            done.append(f"Drop database {db} and role {pg_role(app.name)} (dump archived)")
        my = manifest.database("mysql") if manifest else None
        if my and my.name:
            dump = archive / f"{my.name}.sql"
            with open(_private_new(dump), "w") as f:
                res = subprocess.run(cmd.mariadb_dump(my.name), stdout=f, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                raise TovaError(f"mariadb-dump {my.name} failed: {res.stderr.strip()}",
                                hint=f"the app is stopped; dump and drop {my.name} by hand, then remove again")
            _run(cmd.mariadb_drop(my.name, pg_role(app.name)))
            done.append(f"Drop MariaDB database {my.name} and user {pg_role(app.name)} (dump archived)")
        if manifest and manifest.database("redis"):
            _run(cmd.redis_stop(app.name))
            data = Path(redis_dir(app.name))
            if data.is_dir():
                shutil.move(str(data), str(archive / "redis"))
            Path(redis_conf(app.name)).unlink(missing_ok=True)
            shutil.rmtree(SYSTEMD_DIR / f"{redis_unit(app.name)}.d", ignore_errors=True)
            _run(cmd.daemon_reload())
            done.append(f"Stop {redis_unit(app.name)} (its data archived)")
        return done


def _private_new(path: Path) -> int:
    """A new file only root can read (database dumps)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _int(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value < (1 << 63) - 1 else None  # systemd's "infinity"
