"""LocalSystem (TOVA_SYSTEM=local): the System adapter for tests and development on a
machine that is not the server. It runs app instances as plain child processes on
loopback ports in a temp root and records provisioning runs instead of executing
provision.sh (which would install packages and change the firewall of this host)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tova.errors import EXIT_FAILED, TovaError
from tova.layout import AppLayout, Layout
from tova.manifest import Manifest
from tova.server import envfile, upstreams
from tova.server.procstat import process_usage
from tova.server.releases import current_manifest
from tova.server.sandbox import ToolRun, tool_env
from tova.server.system import System, TextSink
from tova.server.tooling import run_tool


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
        with open(log, "wb") as f:  # this run's output only: ports are reused by later rollouts
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

    def start_instances(self, app: AppLayout, ports: list[int]) -> None:
        for port in ports:
            self.restart_instance(app, port)

    def stop_instances(self, app: AppLayout, ports: list[int]) -> None:
        for port in ports:
            self.stop_instance(app, port)

    def commit_instances(self, app: AppLayout, serving: list[int], retired: list[int]) -> None:
        self.stop_instances(app, retired)  # no boot here to enable anything for

    def journal_tail(self, app: AppLayout, port: int, since: float, lines: int = 12) -> list[str]:
        try:
            text = self._logfile(app, port).read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

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
        sys.stdout.flush()
        for port in ports:
            log = self._logfile(a, port)
            if log.exists():
                with open(log, "rb") as fh:  # streamed, as journalctl does
                    shutil.copyfileobj(fh, sys.stdout.buffer)
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
        upstreams.remove(self.layout.upstreams_dir, app.name)
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
