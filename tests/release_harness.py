"""Shared by the server-side tests: a temp TOVA_ROOT with the toolkit wrapper, a bare repo
made by `tova-release init`, a client work tree pushing over the local file transport,
the LocalSystem adapter and real app processes on free loopback ports."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import IO

from tova.layout import Layout
from tova.server.local_system import LocalSystem

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "tests" / "fixtures" / "tova-fixture-compiler"
# What a push that really went live prints: "(v1)" alone is also in "Deploying app (v1)"
# of a first deploy that then failed its health check (leaving the app stopped).
LIVE_V1 = "Live at https://myapp.example.com (v1)"
# Seconds an instance may take to listen: the product's default. Only an instance that
# never listens waits this long; on a loaded 2-core CI machine a few seconds is not enough.
STARTUP_DEADLINE = 30

APP_TOVA = """server {{
  fn home() {{ text("{body}") }}
  fn healthy() {{ text("ok") }}
  fn broken() {{ respond(500, "unhealthy") }}
  route GET "/" => home
  route GET "/healthz" => {health}
}}
{extra}
deploy "prod" {{
  server: "root@example.com"
  domain: "myapp.example.com"
  instances: {instances}
  keep_releases: {keep}
}}
"""


PORT_LOCKS = Path(tempfile.gettempdir()) / "tova-test-ports"


def free_port_block(size: int = 16) -> tuple[int, IO[bytes]]:
    """A block of `size` free loopback ports, and the open lock file that reserves it until
    closed. Blocks are aligned, so two test processes (parallel runs, other jobs on a CI
    machine) either pick disjoint blocks or contend for the same lock: a port that is
    merely free now could be taken by another run's instance between the check here and
    the rollout's own check, failing a deploy with "process exited" (or answering it)."""
    PORT_LOCKS.mkdir(mode=0o1777, exist_ok=True)
    for _ in range(200):
        start = random.randrange(20000 // size, (60000 - size) // size) * size
        lock = open(PORT_LOCKS / f"{start}.lock", "ab")  # noqa: SIM115 (held by the Site)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        ok = True
        for p in range(start, start + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, lock
        lock.close()
    raise RuntimeError("no free port block")


class Site:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "opt-tova"
        self.work = tmp / "work"
        self.layout = Layout.of(self.root)
        self.app = self.layout.app("myapp")
        self.first_port, self._port_lock = free_port_block()
        bindir = self.root / "toolkit" / "bin"
        bindir.mkdir(parents=True)
        wrapper = bindir / "tova-release"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m tova.server.cli "$@"\n')
        wrapper.chmod(0o755)
        self.env = {
            "PATH": os.environ["PATH"], "HOME": str(tmp), "PYTHONPATH": str(ROOT),
            "TOVA_ROOT": str(self.root), "TOVA_SYSTEM": "local", "TOVA_COMPILER": str(COMPILER),
            "TOVA_FIRST_PORT": str(self.first_port), "TOVA_STARTUP_DEADLINE": str(STARTUP_DEADLINE),
            "TOVA_LOCK_WAIT": "5", "NO_COLOR": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.release("init", "myapp", "--env", "prod", check=True)
        self.work.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "prod", str(self.app.repo))
        (self.work / "tova.toml").write_text('[project]\nname = "myapp"\nentry = "src"\n')

    # --- running things -------------------------------------------------------------
    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=self.work, env=self.env, text=True,
                              capture_output=True, check=check)

    def release(self, *args: str, check: bool = False, stdin: str | None = None,
                extra_env: dict | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run(
            [str(self.root / "toolkit/bin/tova-release"), *args],
            env={**self.env, **(extra_env or {})},
            text=True,
            capture_output=True,
            input=stdin,
            cwd=self.root,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"tova-release {args} failed:\n{res.stdout}\n{res.stderr}")
        return res

    def write_app(self, body: str = "hello v1", health: str = "healthy", instances: int = 2,
                  keep: int = 5, extra: str = "", marker: str = "") -> None:
        src = self.work / "src"
        src.mkdir(exist_ok=True)
        (src / "app.tova").write_text(marker + APP_TOVA.format(body=body, health=health,
                                      instances=instances, keep=keep, extra=extra))

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, *refspec: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, **(extra_env or {})}
        return subprocess.run(["git", "push", "-q", "prod", *(refspec or ("main",))], cwd=self.work,
                              env=env, text=True, capture_output=True)

    # --- looking at the result ------------------------------------------------------
    def ports(self) -> list[int]:
        import json
        return json.loads(self.layout.registry.read_text())["apps"]["myapp"]["ports"]

    def get(self, port: int, path: str = "/") -> tuple[int, str]:
        """(status, body); (0, "") when nothing answers. A stopped port refuses at once, so
        the generous timeout only spares a live instance slowed by a loaded machine."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return 0, ""

    def current(self) -> str | None:
        return self.app.current_version()

    def pids(self) -> dict[int, int]:
        out = {}
        for p in (self.layout.run_dir / "myapp").glob("*.pid") if (self.layout.run_dir / "myapp").is_dir() else []:
            out[int(p.stem)] = int(p.read_text())
        return out

    def close(self) -> None:
        LocalSystem(self.layout).stop_all()
        self._port_lock.close()
