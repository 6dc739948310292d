"""Many apps on one small server (issue 16), measured on the local Debian test server.

Deploys apps b001, b002, ... (two instances each, real `tova` client and `git push`) until
there are N of them, for each N given, and prints per N:

  first deploy   wall time of the `git push` of the N-th app (a new app on a provisioned
                 server; goal <= 2 s), and the median over the apps added for this N
  redeploy       a code change to b001, pushed
  idle CPU       CPU time over an idle window: the toolkit's health watcher (goal <= 0.0005
                 cores per app), beside the apps' own instances, Caddy, journald and
                 systemd (whose figure includes every service that ran and ended)
  journal        lines per hour in the whole journal while idle (without our own ssh
                 logins), and the health watcher's lines per app per day (goal <= 100)
  memory         PSS of the app instances per app (smaps_rollup: the shared Bun binary
                 counted once), and of the watcher
  boot           the server powered off and booted again: seconds from boot (the nspawn
                 start) to every app answering https://<domain>/healthz through Caddy, and
                 from the last instance becoming active to every app answering

With --reset the server starts fresh and the first app's push also measures the first
provisioning (time, disk, and what it leaves behind).

Needs root and the test server (TOVA_TESTSERVER_NAME for a server of your own).

    python benchmarks/bench_many_apps.py --apps 1,10 --idle 60
    python benchmarks/bench_many_apps.py --reset            # N = 1, 10, 30, 60"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
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

APP = """// many-apps benchmark app {name}
server {{
  fn home() {{ text("{text}") }}
  fn healthz() {{ text("ok") }}

  route GET "/" => home
  route GET "/healthz" => healthz
}}

deploy "prod" {{
  server: "tova-testserver"
  domain: "{name}.tova.test"
  instances: {instances}
  memory: "64mb"
}}
"""

# Run on the server: CPU seconds (of live processes, plus cutime+cstime of what they
# reaped) by kind of process, and PSS/RSS in bytes.
SNAPSHOT = r"""
import json, os
hz = os.sysconf("SC_CLK_TCK")
cpu, pss, rss = {}, {}, {}
def kind(pid, name, cmd):
    if "tova.server.watchdog" in cmd: return "watcher"
    if cmd.startswith("/usr/local/bin/bun") or "/bun.exe" in cmd.split(" ")[0]: return "apps"
    if name == "caddy": return "caddy"
    if name == "systemd-journal": return "journald"
    if pid == "1": return "systemd"
    if name.startswith("sshd") or name in ("python3", "bash", "sh"): return "ssh"
    return "other"
for pid in os.listdir("/proc"):
    if not pid.isdigit(): continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    k = kind(pid, name, cmd)
    fields = stat.rpartition(")")[2].split()
    try:  # the process's own CPU time in ns (stat's ticks are too coarse for the watcher)
        own = int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        own = sum(int(x) for x in fields[11:13]) / hz
    cpu[k] = cpu.get(k, 0) + own + sum(int(x) for x in fields[13:15]) / hz  # + reaped children
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"): pss[k] = pss.get(k, 0) + int(line.split()[1]) * 1024
            if line.startswith("Rss:"): rss[k] = rss.get(k, 0) + int(line.split()[1]) * 1024
    except OSError:
        pass
print(json.dumps({"cpu": cpu, "pss": pss, "rss": rss}))
"""

GOAL_DEPLOY = 2.0
GOAL_CORES_PER_APP = 0.0005
GOAL_LINES_PER_APP_DAY = 100


@dataclass
class Row:
    n: int
    first_deploy: float = 0.0
    first_deploy_median: float = 0.0
    redeploy: float = 0.0
    idle_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    journal_lines: int = 0
    watcher_lines: int = 0
    pss_per_app: float = 0.0
    rss_per_app: float = 0.0
    watcher_pss: float = 0.0
    boot_to_all: float | None = None
    active_to_all: float | None = None


class Bench:
    def __init__(self, config: Path, tmp: Path, instances: int) -> None:
        self.config = config
        self.tmp = tmp
        self.instances = instances
        self.env = {**ts.ssh_env(config), "NO_COLOR": "1"}
        self.projects: list[Project] = []
        self.web: Https | None = None

    def ssh(self, cmd: str, input: str | None = None) -> str:
        return check(ts.ssh(cmd, config=self.config, input=input), cmd[:60]).stdout

    def name(self, i: int) -> str:
        return f"b{i:03d}"

    def add_app(self) -> float:
        """A new app: --setup-git, then the timed first push."""
        name = self.name(len(self.projects) + 1)
        root = self.tmp / name
        (root / "src").mkdir(parents=True)
        (root / "tova.toml").write_text(f'[project]\nname = "{name}"\nentry = "src"\n')
        (root / "src" / "app.tova").write_text(APP.format(name=name, text=f"{name} v1", instances=self.instances))
        p = Project(root, self.env)
        p.git("init", "-q", "-b", "main")
        p.commit("v1")
        check(p.tova("deploy", "prod", *SETUP_GIT), f"setup-git {name}")
        began = time.monotonic()
        out = p.push()
        took = time.monotonic() - began
        if "Live at" not in out.stderr:
            raise SystemExit(f"the first deploy of {name} failed:\n{out.stderr}")
        self.projects.append(p)
        return took

    def redeploy(self) -> float:
        p = self.projects[0]
        src = p.dir / "src" / "app.tova"
        text = src.read_text()
        src.write_text(text.replace('text("b001 v', f'text("b001 r{time.time():.0f} v', 1))
        p.commit("redeploy")
        began = time.monotonic()
        out = p.push()
        took = time.monotonic() - began
        if "Live at" not in out.stderr:
            raise SystemExit(f"the redeploy failed:\n{out.stderr}")
        return took

    def snapshot(self) -> dict:
        return json.loads(self.ssh("python3 -", input=SNAPSHOT))

    def idle(self, row: Row, seconds: float) -> None:
        time.sleep(10)  # let the last deploy's work settle
        t0 = float(self.ssh("date +%s.%N"))
        a = self.snapshot()
        time.sleep(seconds)
        b = self.snapshot()
        t1 = float(self.ssh("date +%s.%N"))
        row.idle_seconds = t1 - t0
        row.cpu = {k: b["cpu"].get(k, 0) - a["cpu"].get(k, 0) for k in set(a["cpu"]) | set(b["cpu"])}
        journal = self.ssh(f"journalctl -q -o short --since @{t0:.0f} --until @{t1:.0f}")
        ours = ("sshd[", "systemd-logind[", "session-", "Session ")  # our own logins for the snapshots
        row.journal_lines = sum(1 for line in journal.splitlines() if not any(m in line for m in ours))
        row.watcher_lines = sum(1 for line in journal.splitlines() if " tova-health[" in line)
        n = len(self.projects)
        row.pss_per_app = b["pss"].get("apps", 0) / n
        row.rss_per_app = b["rss"].get("apps", 0) / n
        row.watcher_pss = b["pss"].get("watcher", 0)

    def https(self) -> Https:
        if self.web is None:
            self.web = Https(server_addr(self.config), fetch_ca(self.config, self.tmp / "caddy-root.crt"))
        return self.web

    def reboot(self, row: Row) -> None:
        """Power off, boot, and time every app answering through Caddy."""
        web = self.https()
        domains = [f"{self.name(i + 1)}.tova.test" for i in range(len(self.projects))]
        answered: dict[str, float] = {}
        stop = threading.Event()

        def poll(domain: str) -> None:
            while not stop.is_set():
                try:
                    conn = web.connection(domain, timeout=1)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        answered[domain] = time.clock_gettime(time.CLOCK_BOOTTIME)
                        return
                except (OSError, http.client.HTTPException):
                    pass
                time.sleep(0.05)

        ts.down()
        threads = [threading.Thread(target=poll, args=(d,), daemon=True) for d in domains]
        for t in threads:
            t.start()
        self.config = ts.ensure_up()
        status = json.loads(ts.run_script("status", "--json").stdout)
        boot = _process_start_boottime(int(status["pid"]))
        for t in threads:
            t.join(120)
        stop.set()
        if len(answered) < len(domains):
            print(f"  after the reboot {len(domains) - len(answered)} app(s) did not answer within 120 s")
            return
        row.boot_to_all = max(answered.values()) - boot
        # When did the last instance become active (CLOCK_MONOTONIC, shared with the host)?
        stamps = self.ssh("systemctl list-units --plain --no-legend 'tova-b*@*.service' | awk '{ print $1 }' | "
                          "xargs systemctl show -p ActiveEnterTimestampMonotonic --value")
        last_active = max(int(s) for s in stamps.split() if s.isdigit()) / 1e6
        offset = time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)
        row.active_to_all = max(answered.values()) - (last_active + offset)


def _process_start_boottime(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[19]) / _hz()


def _hz() -> int:
    import os

    return os.sysconf("SC_CLK_TCK")


def first_provisioning(bench: Bench) -> None:
    du = "du -sxb /usr /var /etc /opt 2>/dev/null | awk '{ s += $1 } END { print s }'"
    before = int(bench.ssh(du))
    took = bench.add_app()
    after = int(bench.ssh(du))
    left = bench.ssh("du -sxb /var/cache/apt/archives /root/.npm /usr/local/lib/node_modules/bun/node_modules/@oven"
                     " 2>/dev/null || true")
    print(f"First provisioning (fresh server, first app's push): {took:.0f} s, "
          f"disk +{(after - before) / 2**20:.0f} MB (/usr /var /etc /opt)")
    print("  left behind: " + "; ".join(f"{p} {int(b) / 2**20:.1f} MB" for b, p in
                                        (line.split("\t") for line in left.splitlines())))


def run(args: argparse.Namespace) -> list[Row]:
    config = ts.reset() if args.reset else ts.ensure_up()
    configure_server(config)
    if not args.reset:
        # Apps of an earlier run (b001...) would skew every figure.
        leftover = check(ts.ssh("ls /opt/tova/apps 2>/dev/null || true", config=config), "ls").stdout.split()
        for name in leftover:
            if name.startswith("b") and name[1:].isdigit():
                check(ts.ssh(f"/opt/tova/toolkit/bin/tova-release remove {name} --yes", config=config),
                      f"removing {name}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmpdir:
        bench = Bench(config, Path(tmpdir), args.instances)
        if args.reset:
            first_provisioning(bench)
        for n in sorted(set(args.apps)):
            row = Row(n)
            times = []
            while len(bench.projects) < n:
                times.append(bench.add_app())
            row.first_deploy = times[-1] if times else 0.0
            row.first_deploy_median = statistics.median(times) if times else 0.0
            row.redeploy = bench.redeploy()
            bench.idle(row, args.idle)
            if not args.no_reboot:
                bench.reboot(row)
            rows.append(row)
            print_row(row, header=len(rows) == 1)
    return rows


def print_row(r: Row, header: bool) -> None:
    if header:
        print(f"\n{'N':>3} {'1st deploy':>10} {'(median)':>9} {'redeploy':>9} "
              f"{'watcher CPU':>12} {'/app':>10} {'apps':>7} {'caddy':>7} {'journald':>8} {'systemd':>8} "
              f"{'journal/h':>9} {'watcher/app/day':>15} {'PSS/app':>8} {'RSS/app':>8} {'watcher':>8} "
              f"{'boot->all':>9} {'active->all':>11}")
        print(f"{'':>3} {'(<=2 s)':>10} {'':>9} {'':>9} {'(cores)':>12} {'(<=5e-4)':>10} "
              f"{'(cores)':>7} {'':>7} {'':>8} {'':>8} {'':>9} {'(<=100)':>15}")
    w = r.idle_seconds or 1
    cores = {k: v / w for k, v in r.cpu.items()}
    boot = f"{r.boot_to_all:.1f}s" if r.boot_to_all is not None else "—"
    active = f"{r.active_to_all:.1f}s" if r.active_to_all is not None else "—"
    print(f"{r.n:>3} {r.first_deploy:>9.2f}s {r.first_deploy_median:>8.2f}s {r.redeploy:>8.2f}s "
          f"{cores.get('watcher', 0):>12.6f} {cores.get('watcher', 0) / r.n:>10.7f} {cores.get('apps', 0):>7.4f} "
          f"{cores.get('caddy', 0):>7.4f} {cores.get('journald', 0):>8.4f} {cores.get('systemd', 0):>8.4f} "
          f"{r.journal_lines * 3600 / w:>9.0f} {r.watcher_lines * 86400 / w / r.n:>15.1f} "
          f"{r.pss_per_app / 2**20:>6.1f}MB {r.rss_per_app / 2**20:>6.1f}MB {r.watcher_pss / 2**20:>6.1f}MB "
          f"{boot:>9} {active:>11}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 30, 60],
                        help="comma-separated numbers of apps to measure at (default 1,10,30,60)")
    parser.add_argument("--idle", type=float, default=120, help="seconds of idle measurement per N (default 120)")
    parser.add_argument("--instances", type=int, default=2, help="instances per app (default 2)")
    parser.add_argument("--no-reboot", action="store_true", help="skip the reboot measurement")
    parser.add_argument("--reset", action="store_true", help="start from a fresh server (measures first provisioning)")
    args = parser.parse_args()
    if (reason := ts.unavailable_reason()) is not None:
        print(f"bench_many_apps: skipped: {reason}")
        return 0
    run(args)
    print(f"\nGoals: first deploy of a new app <= {GOAL_DEPLOY:.0f} s; watcher <= {GOAL_CORES_PER_APP} cores per app;"
          f" <= {GOAL_LINES_PER_APP_DAY} health lines per app per day; every app answering within 2 s of its"
          " instances after a boot (active->all).")
    print("CPU columns are cores averaged over the idle window; 'systemd' includes every service that ran and"
          " ended in it (per-app timers would show there).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
