"""Zero-downtime, measured (issues 6 §4 and 12): a bounded load of HTTPS requests through
Caddy on the local test server while the app is redeployed (`git push`), rolled back
(`tova deploy prod --rollback`) and restarted by `tova env prod set`, for `instances: 1`
and `2`; then a bad release whose `/` works and whose health path answers 500.

Per action: requests, failed (an error or any status but 200), retried (a reused
keep-alive connection the server closed before any answer, retried once on a fresh one as
curl and browsers do, counted apart), the slowest answer, and push-to-live: from the start
of the command until the first answer through Caddy from the new instances (the new text,
the earlier text after a rollback, the new value of BENCH after `env set`). Redeploys are
repeated (BENCH_REPEAT, default 5) for a median, with the time each phase of the push ended
(the hook running after ssh, git and the pre-receive check; the build; the release ready).
For the bad release: answers served by
it (goal 0), failed (goal 0), and the time until the push printed the failure (goal < 5 s).
Beside them, a reference from the same run: a `git push` of a branch that does not deploy
(ssh, git and the hook's start, i.e. the floor of any push). Pushes are plain `git push`es
through the project's git config as --setup-git left it. Plain figures, no assertions.

Needs root and the test server (vagrant/testserver; booted if needed, NOT reset: it may
share the server with an e2e run's apps). BENCH_RATE (default 200 requests/s in total)
and BENCH_WORKERS (8 keep-alive connections) bound the load.

    python benchmarks/bench_zero_downtime.py"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import testserver as ts  # noqa: E402
from e2e_support import GIT_ID, SETUP_GIT, Https, Project, check, configure_server, fetch_ca, server_addr  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "200"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "8"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
SETTLE = 1.0  # seconds of load before and after each action

APP = """// zero-downtime benchmark app ({instances} instance(s))
server {{
  fn home() {{ text("{text}") }}
  fn healthz() {{ text("ok") }}
  fn broken() {{ respond(500, "unhealthy") }}
  route GET "/" => home
  route GET "/healthz" => {health}
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
    """WORKERS threads, each on its own keep-alive connection, RATE/WORKERS requests/s
    each, GET /; plus one watcher that polls `watch` until it answers `expect`."""

    web: Https
    domain: str
    watch: str = "/"
    expect: str | None = None
    bad_body: str | None = None  # answers with this body came from the bad release
    ok: int = 0
    failed: int = 0
    retried: int = 0
    bad_answers: int = 0
    slowest: float = 0.0
    live_at: float | None = None  # monotonic time the watcher first saw `expect`
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
            body = b""
            for attempt in (1, 2):
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    body = resp.read()
                    used = True
                    if resp.status != 200:
                        error = f"HTTP {resp.status}"
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    # A server may close an idle keep-alive connection (Caddy does on a
                    # reload) just as a request goes out on it: retried once, counted.
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
                if self.bad_body is not None and body.decode(errors="replace") == self.bad_body:
                    self.bad_answers += 1
                if error:
                    self.failed += 1
                    self.errors[error] = self.errors.get(error, 0) + 1
                else:
                    self.ok += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def _watcher(self) -> None:
        conn = self.web.connection(self.domain, timeout=30)
        while not self._stop.is_set() and self.live_at is None:
            try:
                conn.request("GET", self.watch)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                if resp.status == 200 and body == self.expect:
                    self.live_at = time.monotonic()
            except Exception:  # a failure here is counted by the workers, not by the watcher
                conn.close()
                conn = self.web.connection(self.domain, timeout=30)
            time.sleep(0.01)
        conn.close()

    def run_during(self, action: Callable[[], object]) -> tuple[float, object]:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(WORKERS)]
        if self.expect is not None:
            threads.append(threading.Thread(target=self._watcher, daemon=True))
        for t in threads:
            t.start()
        time.sleep(SETTLE)
        began = time.monotonic()
        result = action()
        time.sleep(SETTLE)
        self._stop.set()
        for t in threads:
            t.join(60)
        return began, result


# The push's lines that end a phase: the post-receive hook running (after ssh, git and the
# pre-receive check), the build done, the release ready (the line before the rollout).
PHASE_LINES = {"received": ("Received push",), "built": ("→ done", "✓"),  # the first step's: the build's
               "released": ("Deploying app", "✓")}


def timed_push(project: Project, *refspec: str, marks: dict[str, float] | None = None
               ) -> tuple[str, float | None, float]:
    """`git push`, its output, when (seconds after the start) a line saying the health check
    failed arrived, and how long the whole push took. `marks` gets the monotonic time each
    line of PHASE_LINES arrived."""
    began = time.monotonic()
    proc = subprocess.Popen(["git", *GIT_ID, "push", "prod", *(refspec or ("main",))], cwd=project.dir,
                            env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out, failed_at = [], None
    for line in proc.stdout:
        out.append(line)
        if failed_at is None and "FAILED" in line:
            failed_at = time.monotonic() - began
        if marks is not None:
            for mark, words in PHASE_LINES.items():
                if mark not in marks and all(w in line for w in words):
                    marks[mark] = time.monotonic()
    proc.wait()
    return "".join(out), failed_at, time.monotonic() - began


def write_app(project: Project, domain: str, instances: int, text: str, health: str = "healthz") -> None:
    (project.dir / "src" / "app.tova").write_text(APP.format(instances=instances, domain=domain, text=text,
                                                            health=health))


def deploy_app(tmp: Path, env: dict[str, str], instances: int) -> tuple[Project, str]:
    name = f"zdt{instances}"
    domain = f"{name}.tova.test"
    root = tmp / name
    (root / "src").mkdir(parents=True)
    (root / "tova.toml").write_text(f'[project]\nname = "{name}"\nentry = "src"\n')
    p = Project(root, env)
    write_app(p, domain, instances, "v1")
    p.git("init", "-q", "-b", "main")
    p.commit("v1")
    check(p.tova("deploy", "prod", *SETUP_GIT), "tova deploy prod --setup-git")
    out = check(p.push(), "git push")
    if "Live at" not in out.stdout + out.stderr:
        raise SystemExit(f"the first deploy of {name} failed:\n{out.stderr}")
    return p, domain


@dataclass
class Row:
    instances: int
    action: str
    requests: int = 0
    failed: int = 0
    retried: int = 0
    slowest: float = 0.0
    live: list[float] = field(default_factory=list)
    rollout: list[float] = field(default_factory=list)  # release ready -> new instances answering
    phases: dict[str, list[float]] = field(default_factory=dict)  # PHASE_LINES' arrival after the start
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, load: Load, began: float) -> None:
        self.requests += load.ok + load.failed
        self.failed += load.failed
        self.retried += load.retried
        self.slowest = max(self.slowest, load.slowest)
        if load.live_at is not None:
            self.live.append(load.live_at - began)
        for k, v in load.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v


def measure(instances: int, project: Project, domain: str, web: Https) -> tuple[list[Row], dict]:
    rows = []
    version = [1]

    redeploys = Row(instances, f"redeploy (git push) ×{REPEAT}")
    for _ in range(REPEAT):
        version[0] += 1
        text = f"v{version[0]}"
        write_app(project, domain, instances, text)
        project.commit(text)
        load = Load(web, domain, expect=text)
        marks: dict[str, float] = {}
        began, (out, _, _) = load.run_during(partial(timed_push, project, marks=marks))
        assert "Live at" in out, out
        redeploys.add(load, began)
        if load.live_at is not None and "released" in marks:
            redeploys.rollout.append(load.live_at - marks["released"])
        for mark, at in marks.items():
            redeploys.phases.setdefault(mark, []).append(at - began)
    rows.append(redeploys)

    rollback = Row(instances, "rollback")
    load = Load(web, domain, expect=f"v{version[0] - 1}")
    began, _ = load.run_during(lambda: check(project.tova("deploy", "prod", "--rollback"), "rollback"))
    rollback.add(load, began)
    rows.append(rollback)

    restart = Row(instances, "restart (tova env set)")
    value = f"{time.time():.6f}"
    load = Load(web, domain, watch="/__env/BENCH", expect=value)
    began, _ = load.run_during(lambda: check(project.tova("env", "prod", "set", f"BENCH={value}"), "env set"))
    restart.add(load, began)
    rows.append(restart)

    # A bad release: `/` works, the health path answers 500.
    bad_text = f"bad v{version[0] + 1}"
    write_app(project, domain, instances, bad_text, health="broken")
    project.commit("bad release")
    load = Load(web, domain, bad_body=bad_text)
    _, (out, failed_at, took) = load.run_during(lambda: timed_push(project))
    bad = {"instances": instances, "requests": load.ok + load.failed, "bad_answers": load.bad_answers,
           "failed": load.failed, "retried": load.retried, "failed_at": failed_at, "push_took": took,
           "rolled_back": "Rolled back to" in out, "journal": "Last lines of" in out}
    return rows, bad


def reference_push(project: Project) -> float:
    """A push of a branch that does not deploy: ssh, git and the hook's start."""
    project.git("checkout", "-q", "-b", "bench-reference")
    project.commit("reference")
    began = time.monotonic()
    check(project.run(["git", *GIT_ID, "push", "-q", "prod", "bench-reference"]), "reference push")
    took = time.monotonic() - began
    project.git("checkout", "-q", "main")
    return took


def main() -> int:
    if (reason := ts.unavailable_reason()) is not None:
        print(f"bench_zero_downtime: skipped: {reason}")
        return 0
    config = ts.ensure_up()
    configure_server(config)
    env = {**ts.ssh_env(config), "NO_COLOR": "1"}
    # git pushes as a user's plain `git push`: through the project's core.sshCommand, which
    # --setup-git wrote (TOVA_SSH_CONFIG's -F, and one ssh connection kept between pushes).
    env.pop("GIT_SSH_COMMAND")
    rows: list[Row] = []
    bads: list[dict] = []
    reference = None
    with tempfile.TemporaryDirectory(prefix="bench-zdt-") as tmpdir:
        tmp = Path(tmpdir)
        for instances in (1, 2):
            project, domain = deploy_app(tmp, env, instances)
            web = Https(server_addr(config), fetch_ca(config, tmp / "ca.crt"))
            r, bad = measure(instances, project, domain, web)
            rows += r
            bads.append(bad)
            if reference is None:
                reference = reference_push(project)
            project.tova("deploy", "prod", "--remove", "--yes")

    print(f"\nZero-downtime under load ({RATE:.0f} HTTPS requests/s through Caddy, {WORKERS} keep-alive connections)")
    print(f"{'instances':>9}  {'action':<26}{'requests':>9}{'failed':>8}{'retried':>8}{'slowest':>10}"
          f"{'push-to-live (median, max)':>28}")
    for row in rows:
        live = (f"{statistics.median(row.live):.2f} s, {max(row.live):.2f} s" if row.live else "never seen")
        extra = "  " + ", ".join(f"{k}: {v}" for k, v in row.errors.items()) if row.errors else ""
        print(f"{row.instances:>9}  {row.action:<26}{row.requests:>9}{row.failed:>8}{row.retried:>8}"
              f"{row.slowest * 1000:>8.0f}ms{live:>28}{extra}")
    print("push-to-live: from the command's start to the first answer through Caddy from the new instances")
    for row in rows:
        if row.rollout:
            print(f"  {row.instances} instance(s), redeploy: of which from the release being ready to the new"
                  f" instances answering (start, check, switch): median {statistics.median(row.rollout):.2f} s")
    for row in rows:
        if row.phases and row.live:
            when = ", ".join(f"{mark} {statistics.median(row.phases[mark]):.2f} s" for mark in PHASE_LINES
                             if mark in row.phases)
            print(f"  {row.instances} instance(s), redeploy: phases ended after (median) {when},"
                  f" live {statistics.median(row.live):.2f} s")
    print(f"reference (same run): a git push of a branch that does not deploy took {reference:.2f} s")
    print("\nBad release (/ answers, the health path answers 500), under the same load")
    print(f"{'instances':>9}{'requests':>10}{'answers from bad release':>26}{'failed':>8}{'retried':>8}"
          f"{'failure reported after':>24}{'push took':>11}")
    for b in bads:
        at = f"{b['failed_at']:.2f} s" if b["failed_at"] is not None else "never"
        print(f"{b['instances']:>9}{b['requests']:>10}{b['bad_answers']:>26}{b['failed']:>8}{b['retried']:>8}"
              f"{at:>24}{b['push_took']:>10.2f}s"
              + ("" if b["rolled_back"] and b["journal"] else "  (no rollback or no journal lines!)"))
    print("goals: failed 0, retried 0, answers from a bad release 0, failure reported < 5 s,"
          " code-only push-to-live median <= 0.6 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
