"""Zero-downtime, measured (issue 6 §4): a bounded load of HTTPS requests through Caddy on
the local test server while the app is redeployed (`git push`), rolled back (`tova deploy
prod --rollback`) and restarted by `tova env prod set`, for `instances: 1` and `2`.
Counts failed requests (an error or any status but 200) and the slowest answer. A request
whose reused keep-alive connection was closed by the server before any answer is retried
once on a fresh connection, as curl and browsers do, and counted in its own column.
Goal: zero failed requests in every case. Plain figures, no assertions.

Needs root and the test server (vagrant/testserver; booted if needed, NOT reset: it may
share the server with an e2e run's apps). BENCH_RATE (default 200 requests/s in total)
and BENCH_WORKERS (8 keep-alive connections) bound the load.

    python benchmarks/bench_zero_downtime.py"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Https, Project, check, configure_server, fetch_ca, server_addr  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "200"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "8"))
SETTLE = 1.0  # seconds of load before and after each action

APP = """// zero-downtime benchmark app ({instances} instance(s))
server {{
  fn home() {{ text("{text}") }}
  fn healthz() {{ text("ok") }}
  route GET "/" => home
  route GET "/healthz" => healthz
}}

deploy "prod" {{
  server: "tova-testserver"
  domain: "{domain}"
  instances: {instances}
  memory: "128mb"
}}
"""


@dataclass
class Load:
    """WORKERS threads, each on its own keep-alive connection, RATE/WORKERS requests/s each."""

    web: Https
    domain: str
    ok: int = 0
    failed: int = 0
    retried: int = 0  # stale keep-alive connections retried once on a fresh one
    slowest: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self) -> None:
        interval = WORKERS / RATE
        conn = self.web.connection(self.domain, timeout=30)
        used = False  # has this connection answered a request (is it a reused one)?
        next_at = time.monotonic()
        while not self._stop.is_set():
            start = time.monotonic()
            error = None
            retried = False
            for attempt in (1, 2):
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    resp.read()
                    used = True
                    if resp.status != 200:
                        error = f"HTTP {resp.status}"
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    # A server may close an idle keep-alive connection (Caddy does on a
                    # reload) just as a request goes out on it. Like curl and browsers,
                    # retry once on a fresh connection when the reused one died before
                    # any answer; counted apart, never hidden.
                    conn.close()
                    conn = self.web.connection(self.domain, timeout=30)
                    if used and attempt == 1:
                        used, retried = False, True
                        continue
                    error = type(exc).__name__
                    break
                except Exception as exc:  # every other kind of failure counts, then reconnect
                    error = type(exc).__name__
                    conn.close()
                    conn = self.web.connection(self.domain, timeout=30)
                    used = False
                    break
            took = time.monotonic() - start
            with self._lock:
                self.slowest = max(self.slowest, took)
                self.retried += retried
                if error:
                    self.failed += 1
                    self.errors[error] = self.errors.get(error, 0) + 1
                else:
                    self.ok += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def run_during(self, action) -> float:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        time.sleep(SETTLE)
        began = time.monotonic()
        action()
        took = time.monotonic() - began
        time.sleep(SETTLE)
        self._stop.set()
        for t in threads:
            t.join(60)
        return took


def deploy_app(tmp: Path, env: dict[str, str], instances: int) -> tuple[Project, str]:
    name = f"zdt{instances}"
    domain = f"{name}.tova.test"
    root = tmp / name
    (root / "src").mkdir(parents=True)
    (root / "tova.toml").write_text(f'[project]\nname = "{name}"\nentry = "src"\n')
    (root / "src" / "app.tova").write_text(APP.format(instances=instances, domain=domain, text="v1"))
    p = Project(root, env)
    p.git("init", "-q", "-b", "main")
    p.commit("v1")
    check(p.tova("deploy", "prod", *SETUP_GIT), "tova deploy prod --setup-git")
    out = check(p.push(), "git push")
    if "Live at" not in out.stdout + out.stderr:
        raise SystemExit(f"the first deploy of {name} failed:\n{out.stderr}")
    return p, domain


def main() -> int:
    if (reason := ts.unavailable_reason()) is not None:
        print(f"bench_zero_downtime: skipped: {reason}")
        return 0
    config = ts.ensure_up()
    configure_server(config)
    env = {**ts.ssh_env(config), "NO_COLOR": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-zdt-") as tmpdir:
        tmp = Path(tmpdir)
        for instances in (1, 2):
            project, domain = deploy_app(tmp, env, instances)
            web = Https(server_addr(config), fetch_ca(config, tmp / "ca.crt"))
            counter = [1]

            def redeploy(project: Project = project, domain: str = domain, instances: int = instances,
                         counter: list[int] = counter) -> None:
                counter[0] += 1
                (project.dir / "src" / "app.tova").write_text(
                    APP.format(instances=instances, domain=domain, text=f"v{counter[0]}"))
                project.commit(f"v{counter[0]}")
                res = project.push()
                assert "Live at" in res.stdout + res.stderr, res.stderr

            actions = [
                ("redeploy (git push)", redeploy),
                ("rollback", lambda p=project: check(p.tova("deploy", "prod", "--rollback"), "rollback")),
                ("restart (tova env set)",
                 lambda p=project: check(p.tova("env", "prod", "set", f"BENCH={time.time()}"), "env set")),
            ]
            for label, action in actions:
                load = Load(web, domain)
                took = load.run_during(action)
                rows.append((instances, label, load.ok + load.failed, load.failed, load.retried, load.slowest, took,
                             load.errors))
            project.tova("deploy", "prod", "--remove", "--yes")

    print(f"\nZero-downtime under load ({RATE:.0f} HTTPS requests/s through Caddy, {WORKERS} keep-alive connections)")
    print(
        f"{'instances':>9}  {'action':<24}{'requests':>9}{'failed':>8}{'retried*':>9}{'slowest':>10}{'action took':>13}"
    )
    for instances, label, total, failed, retried, slowest, took, errors in rows:
        extra = "  " + ", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else ""
        print(
            f"{instances:>9}  {label:<24}{total:>9}{failed:>8}{retried:>9}{slowest * 1000:>8.0f}ms{took:>12.1f}s{extra}"
        )
    print("* idle keep-alive connections Caddy closed on its graceful reload, each request retried once")
    print("  on a fresh connection, as curl and browsers do (a reload resets Caddy's active health checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
