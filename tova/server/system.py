"""THE adapter for system actions. No other module runs systemctl, journalctl, caddy,
psql, pg_dump, redis-cli or provision.sh.

SystemdSystem acts on a real server. LocalSystem (TOVA_SYSTEM=local) is for tests and
development on a machine that is not the server: it runs app instances as plain child
processes on loopback ports and records provisioning runs instead of executing
provision.sh (which would install packages and change the firewall of this host)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tova.errors import EXIT_FAILED, TovaError
from tova.layout import AppLayout, Layout
from tova.manifest import Manifest
from tova.naming import app_user, build_user, legacy_health_units, pg_database, pg_role, redis_user, unit, unit_template
from tova.server import envfile
from tova.server.procstat import process_usage
from tova.server.releases import current_manifest
from tova.server.sandbox import ToolRun, systemd_run_argv, tool_env
from tova.server.tooling import run_tool

SYSTEMD_DIR = Path("/etc/systemd/system")
# Where Debian's caddy package (user caddy, HOME=/var/lib/caddy) keeps certificates.
CADDY_STORAGE_DIRS = (
    Path("/var/lib/caddy/.local/share/caddy/certificates"),
    Path("/root/.local/share/caddy/certificates"),
)



class TextSink(Protocol):
    """Where provisioning output goes: a text stream, or the progress printer's adapter."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...

def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")


class System(ABC):
    """What the pipeline and the CLI need from the host: SystemdSystem on a server,
    LocalSystem for tests in a temp root."""

    name = "abstract"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # instances
    @abstractmethod
    def restart_instance(self, app: AppLayout, port: int) -> None:
        """(Re)start the instance on `port`."""

    @abstractmethod
    def stop_instance(self, app: AppLayout, port: int) -> None:
        """Stop and disable the instance on `port`; stopping a stopped one is fine."""

    @abstractmethod
    def instance_running(self, app: AppLayout, port: int) -> bool:
        """Whether the instance's process is up."""

    @abstractmethod
    def instance_info(self, app: AppLayout, port: int) -> dict[str, Any]:
        """port, state, memory_bytes, cpu_percent, uptime_seconds (None when unknown)."""

    # provisioning
    @abstractmethod
    def provision(self, script: Path, layers: list[str], out: TextSink) -> int:
        """Run provision.sh for `layers`, streaming its output; its exit status."""

    # inspection
    @abstractmethod
    def logs(self, app: str, ports: list[int], since: str | None, follow: bool) -> int:
        """Show the app's logs; an exit status."""

    @abstractmethod
    def service_state(self, service: str) -> str:
        """State of a system service (caddy, postgresql, redis-server) or "absent"."""

    @abstractmethod
    def certificate(self, domain: str) -> dict[str, Any] | None:
        """The certificate the proxy holds for `domain`, or None."""

    @abstractmethod
    def journal(self, line: str) -> None:
        """Record one line of deploy output in the system log."""

    @abstractmethod
    def reload_proxy(self) -> None:
        """Gracefully reload the reverse proxy."""

    @abstractmethod
    def databases(self, manifest: Manifest | None) -> list[dict[str, Any]]:
        """State of each engine the app uses, with the app's share of it."""

    # the build sandbox and file ownership
    @abstractmethod
    def build_owner(self, app: AppLayout) -> tuple[int, int] | None:
        """(uid, gid) of the app's build user, created when missing; None: no switch."""

    @abstractmethod
    def app_owner(self, app: AppLayout) -> tuple[int, int] | None:
        """(uid, gid) of the app's own user (owner of data/); None: no switch."""

    @abstractmethod
    def run_tool(self, run: ToolRun, out: Callable[[str], None]) -> int:
        """Run pushed-code tooling (compiler, installer) in the build sandbox, each output
        line to `out`; its exit status."""

    # removal
    @abstractmethod
    def remove_app(self, app: AppLayout, ports: list[int], manifest: Manifest | None, archive: Path) -> list[str]:
        """Take the app off the system (data archived into `archive`); the steps done."""


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

    # Pure command builders: argv lists, never shell strings.
    @staticmethod
    def restart_cmds(app: str, port: int) -> list[list[str]]:
        return [["systemctl", "enable", "--quiet", unit(app, port)],
                ["systemctl", "restart", unit(app, port)]]

    @staticmethod
    def stop_cmds(app: str, port: int) -> list[list[str]]:
        return [["systemctl", "disable", "--quiet", unit(app, port)],
                ["systemctl", "stop", unit(app, port)]]

    @staticmethod
    def provision_cmd(script: Path, layers: list[str]) -> list[str]:
        return ["bash", str(script), "--only", ",".join(layers)]

    @staticmethod
    def logs_cmd(app: str, ports: list[int], since: str | None, follow: bool) -> list[str]:
        argv = ["journalctl", "--no-pager", "-o", "short-iso"]
        for p in ports:
            argv += ["-u", unit(app, p)]
        if since:
            argv.append(f"--since={since}")  # one argument, even for "-2min"
        if follow:
            argv.append("--follow")
        return argv

    def _check(self, argv: list[str]) -> None:
        res = _run(argv)
        if res.returncode != 0:
            raise TovaError(f"{' '.join(argv)} failed: {res.stderr.strip() or res.returncode}",
                            hint="see `journalctl -xe` on the server", exit_code=EXIT_FAILED)

    def restart_instance(self, app: AppLayout, port: int) -> None:
        for argv in self.restart_cmds(app.name, port):
            self._check(argv)

    def stop_instance(self, app: AppLayout, port: int) -> None:
        for argv in self.stop_cmds(app.name, port):
            _run(argv)  # stopping something already stopped is fine

    def instance_running(self, app: AppLayout, port: int) -> bool:
        return _run(["systemctl", "is-active", "--quiet", unit(app.name, port)]).returncode == 0

    def instance_info(self, app: AppLayout, port: int) -> dict[str, Any]:
        res = _run(["systemctl", "show", unit(app.name, port), "-p",
                    "ActiveState,MemoryCurrent,CPUUsageNSec,ActiveEnterTimestampMonotonic,MainPID"])
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
        proc = subprocess.Popen(self.provision_cmd(script, layers), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
        return proc.wait()

    def logs(self, app: str, ports: list[int], since: str | None, follow: bool) -> int:
        return subprocess.call(self.logs_cmd(app, ports, since, follow))

    @staticmethod
    def useradd_cmd(user: str) -> list[str]:
        return ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", user]

    def build_owner(self, app: AppLayout) -> tuple[int, int] | None:
        user = build_user(app.name)
        ids = _ids(user)
        if ids is None:
            res = _run(self.useradd_cmd(user))
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
            _run(["systemctl", "reload", "caddy"])

    def journal(self, line: str) -> None:
        """Deploy output for `journalctl -t tova-deploy` (through syslog's /dev/log)."""
        import syslog

        syslog.openlog("tova-deploy", 0, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_INFO, line)

    def service_state(self, service: str) -> str:
        """systemd's ActiveState, or "absent" when no such unit is installed."""
        res = _run(["systemctl", "show", service, "-p", "LoadState,ActiveState"])
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
                res = _run(["runuser", "-u", "postgres", "--", "psql", "-p", str(db.port or 5432), "-XAtq",
                            "-c", f"SELECT pg_database_size('{_sql_literal(db.name or '')}')"])
                entry["size_bytes"] = _int(res.stdout.strip()) if res.returncode == 0 else None
            elif db.engine == "redis":
                entry["state"] = self.service_state("redis-server")
                keys = _run(["redis-cli", "--scan", "--pattern", f"{app}:*"])
                entry["keys"] = len(keys.stdout.split()) if keys.returncode == 0 else None
                info = _run(["redis-cli", "INFO", "memory"])
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
        res = _run(["openssl", "x509", "-enddate", "-noout", "-in", str(cert)])
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
        _run(["systemctl", "disable", "--now", health_timer])
        for name in (unit_template(app.name), health_service, health_timer):
            (SYSTEMD_DIR / name).unlink(missing_ok=True)
        _run(["systemctl", "daemon-reload"])
        done.append("Remove systemd services")
        self.layout.caddy_app(app.name).unlink(missing_ok=True)
        _run(["systemctl", "reload", "caddy"])
        done.append("Remove Caddy config")
        pg = manifest.database("postgres") if manifest else None
        if pg:
            # An inferred database has no name in the manifest: the renderer's default.
            db = pg_database(app.name, pg.name)
            dump = archive / f"{db}.sql"
            with open(dump, "w") as f:
                res = subprocess.run(["runuser", "-u", "postgres", "--", "pg_dump", "-p", str(pg.port or 5432), db],
                                     stdout=f, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                # Never drop a database whose dump failed.
                raise TovaError(f"pg_dump {db} failed: {res.stderr.strip()}",
                                hint=f"the app is stopped; dump and drop {db} by hand, then remove again")
            ident = '"' + db.replace('"', '""') + '"'
            _run(["runuser", "-u", "postgres", "--", "psql", "-p", str(pg.port or 5432), "-v", "ON_ERROR_STOP=1",
                  "-c", f"DROP DATABASE IF EXISTS {ident}"])
            role = '"' + pg_role(app.name).replace('"', '""') + '"'
            _run(["runuser", "-u", "postgres", "--", "psql", "-p", str(pg.port or 5432), "-v", "ON_ERROR_STOP=1",
                  "-c", f"DROP ROLE IF EXISTS {role}"])
            done.append(f"Drop database {db} and role {pg_role(app.name)} (dump archived)")
        my = manifest.database("mysql") if manifest else None
        if my and my.name:
            dump = archive / f"{my.name}.sql"
            with open(dump, "w") as f:
                res = subprocess.run(["mariadb-dump", "--single-transaction", "--databases", my.name],
                                     stdout=f, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                raise TovaError(f"mariadb-dump {my.name} failed: {res.stderr.strip()}",
                                hint=f"the app is stopped; dump and drop {my.name} by hand, then remove again")
            # Names are [a-z0-9_] (app names), so backticks and quotes cannot be broken out of.
            _run(["mariadb", "-e", f"DROP DATABASE IF EXISTS `{my.name}`; "
                                   f"DROP USER IF EXISTS '{pg_role(app.name)}'@'127.0.0.1';"])
            done.append(f"Drop MariaDB database {my.name} and user {pg_role(app.name)} (dump archived)")
        if manifest and manifest.database("redis"):
            _run(["redis-cli", "ACL", "DELUSER", redis_user(app.name)])
            _run(["redis-cli", "ACL", "SAVE"])
            done.append(f"Remove Redis user {redis_user(app.name)}")
            keys = _run(["redis-cli", "--scan", "--pattern", f"{app.name}:*"]).stdout.split()
            for i in range(0, len(keys), 500):
                _run(["redis-cli", "DEL", *keys[i:i + 500]])
            done.append(f"Delete {len(keys)} Redis keys {app.name}:*")
        return done


def _int(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value < (1 << 63) - 1 else None  # systemd's "infinity"


class LocalSystem(System):
    name = "local"

    def __init__(self, layout: Layout, runtime: str | None = None) -> None:
        super().__init__(layout)
        self._children: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self.runtime = runtime or os.environ.get("TOVA_LOCAL_RUNTIME") or (
            shutil.which("bun") or shutil.which("node") or "node")

    def _pidfile(self, app: AppLayout, port: int) -> Path:
        return self.layout.run_dir / app.name / f"{port}.pid"

    def _logfile(self, app: AppLayout, port: int) -> Path:
        return self.layout.run_dir / app.name / f"{port}.log"

    def _pid(self, app: AppLayout, port: int) -> int | None:
        try:
            pid = int(self._pidfile(app, port).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _ours(pid, app) else None

    def restart_instance(self, app: AppLayout, port: int) -> None:
        self.stop_instance(app, port)
        server = app.current / "server.js"
        if not server.exists():
            raise TovaError(f"{server} does not exist", hint="deploy the app first", exit_code=EXIT_FAILED)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(app.dir)}
        manifest = current_manifest(app)
        if manifest is not None:
            env.update(dict(manifest.env_vars))
        env.update(envfile.read(app.env_file))  # EnvironmentFile= wins over Environment=
        env["PORT"] = str(port)
        env["NODE_ENV"] = "production"  # as the unit sets it
        log = self._logfile(app, port)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            proc = subprocess.Popen(
                [self.runtime, str(server)], cwd=str(app.data), env=env,  # the unit's WorkingDirectory
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the hook like a service would
            )
        self._children[(app.name, port)] = proc
        self._pidfile(app, port).write_text(f"{proc.pid}\n")

    def stop_instance(self, app: AppLayout, port: int) -> None:
        child = self._children.pop((app.name, port), None)
        pid = child.pid if child is not None and child.poll() is None else self._pid(app, port)
        if pid is not None:
            terminate(pid)
        self._pidfile(app, port).unlink(missing_ok=True)

    def instance_running(self, app: AppLayout, port: int) -> bool:
        child = self._children.get((app.name, port))
        if child is not None:  # started by us: may not have exec'd the runtime yet
            return child.poll() is None
        pid = self._pid(app, port)
        return pid is not None and _alive(pid)

    def instance_info(self, app: AppLayout, port: int) -> dict[str, Any]:
        pid = self._pid(app, port)
        if pid is None or not _alive(pid):
            return {"port": port, "state": "inactive", "memory_bytes": None,
                    "cpu_percent": None, "uptime_seconds": None}
        mem, cpu_s = process_usage(pid)
        uptime = int(time.time() - Path(f"/proc/{pid}").stat().st_mtime)
        cpu = round(cpu_s / uptime * 100, 1) if cpu_s is not None and uptime else None
        return {"port": port, "state": "active", "memory_bytes": mem, "cpu_percent": cpu,
                "uptime_seconds": uptime}

    def provision(self, script: Path, layers: list[str], out: TextSink) -> int:
        record = {"script": str(script), "layers": layers, "time": time.time()}
        path = self.layout.run_dir / "provision.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return 0

    def provision_runs(self) -> list[dict[str, Any]]:
        path = self.layout.run_dir / "provision.jsonl"
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line]
        except FileNotFoundError:
            return []

    def logs(self, app: str, ports: list[int], since: str | None, follow: bool) -> int:
        a = self.layout.app(app)
        for port in ports:
            log = self._logfile(a, port)
            if log.exists():
                sys.stdout.write(log.read_text(errors="replace"))
        sys.stdout.flush()
        return 0

    def service_state(self, service: str) -> str:
        return "unknown"

    def build_owner(self, app: AppLayout) -> tuple[int, int] | None:
        return None  # a test root: no users to switch to

    def app_owner(self, app: AppLayout) -> tuple[int, int] | None:
        return None

    def run_tool(self, run: ToolRun, out: Callable[[str], None]) -> int:
        """No sandbox in a test root: the tool runs as this process's user."""
        env = tool_env(run)
        env["PATH"] = os.environ.get("PATH", env["PATH"])
        return run_tool(run.argv, run.cwd, out, env=env)

    def certificate(self, domain: str) -> dict[str, Any] | None:
        return None  # no Caddy runs in a local test root

    def reload_proxy(self) -> None:
        """No Caddy runs in a local test root; count the reloads for the tests."""
        path = self.layout.run_dir / "proxy-reloads"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("reload\n")

    def journal(self, line: str) -> None:
        """The local stand-in for the journal: a log file under the root's run dir."""
        path = self.layout.run_dir / "journal.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"tova-deploy: {line}\n")

    def databases(self, manifest: Manifest | None) -> list[dict[str, Any]]:
        return [{"engine": d.engine, "name": d.name, "state": "unknown"}
                for d in (manifest.databases if manifest else ())]

    def remove_app(self, app: AppLayout, ports: list[int], manifest: Manifest | None, archive: Path) -> list[str]:
        for port in ports:
            self.stop_instance(app, port)
        self.layout.caddy_app(app.name).unlink(missing_ok=True)
        return [f"Stop {len(ports)} instance{'s' if len(ports) != 1 else ''}", "Remove Caddy config"]

    def stop_all(self) -> None:
        """End every instance this adapter started under its root (test teardown), each
        only after checking the pid is still that instance's process."""
        for pidfile in self.layout.run_dir.glob("*/*.pid"):
            try:
                pid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            if _ours(pid, self.layout.app(pidfile.parent.name)):
                terminate(pid, grace=2)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    except ChildProcessError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")


def _ours(pid: int, app: AppLayout) -> bool:
    """The pid still runs this app's server (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(app.dir).encode() in cmdline


def terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if not _alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        time.sleep(0.01)


def select_system(layout: Layout, environ: dict[str, str] | None = None) -> System:
    env = os.environ if environ is None else environ
    kind = env.get("TOVA_SYSTEM", "systemd")
    if kind == "local":
        return LocalSystem(layout, env.get("TOVA_LOCAL_RUNTIME"))
    if kind == "systemd":
        return SystemdSystem(layout)
    raise TovaError(f"unknown TOVA_SYSTEM {kind!r}", hint="use 'systemd' or 'local'")
