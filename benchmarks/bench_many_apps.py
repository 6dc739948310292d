"""Many apps on one small server (issue 16), measured on the local Debian test server.

Deploys apps b001, b002, ... (two instances each, real `tova` client and `git push`) until
there are N of them, for each N given, and prints per N:

  first deploy   wall time of the `git push` of the N-th app (a new app on a provisioned
                 server; goal <= 2 s), and the median over the apps added for this N
  redeploy       a code change to b001, pushed
  idle CPU       CPU time over an idle window: the toolkit's health watcher (goal <= 0.0005
                 cores per app), beside the apps' own instances, Caddy, journald and
                 systemd (whose figure includes every service that ran and ended)
  journal        lines per hour in the whole journal in steady state (idle, without our own
                 ssh logins), per server and per app; and the health checking's lines per app
                 per day (goal <= 100): the watcher's own, and the checks' requests the apps
                 log (nobody else asks them anything while idle)
  memory         PSS of the app instances per app (smaps_rollup: the shared Bun binary
                 counted once), and of the watcher
  boot           the server powered off and booted again: seconds from boot (the nspawn
                 start) to every app answering through Caddy; and per app, from the first of
                 its instances listening to Caddy answering for it (goal <= 2 s; the worst
                 app and the median), measured on the server by tests/answer_probe.py
  Caddy restart  the same per app, from `systemctl restart caddy` (instances listening)

With --reset the server starts fresh and the first app's push also measures the first
provisioning (time, disk, and what it leaves behind).

Needs root and the test server (TOVA_TESTSERVER_NAME for a server of your own).

    python benchmarks/bench_many_apps.py --apps 1,10 --idle 60
    python benchmarks/bench_many_apps.py --reset            # N = 1, 10, 30, 60"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import answer_timing  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Project, check, configure_server  # noqa: E402

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
PROVISIONING_APP = "b000"
SETTLE = 40  # s: longer than the apps' health_interval (30 s on the test server)
APP_LINE = re.compile(r" tova-b\d{3}\[\d+\]: ")


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
    app_lines: int = 0
    pss_per_app: float = 0.0
    rss_per_app: float = 0.0
    watcher_pss: float = 0.0
    boot_to_all: float | None = None
    boot_answers: answer_timing.Answers | None = None
    restart_answers: answer_timing.Answers | None = None


class Bench:
    def __init__(self, config: Path, tmp: Path, instances: int) -> None:
        self.config = config
        self.tmp = tmp
        self.instances = instances
        self.env = {**ts.ssh_env(config), "NO_COLOR": "1"}
        self.projects: list[Project] = []

    def ssh(self, cmd: str, input: str | None = None) -> str:
        return check(ts.ssh(cmd, config=self.config, input=input), cmd[:60]).stdout

    def name(self, i: int) -> str:
        return f"b{i:03d}"

    def add_app(self, name: str | None = None) -> float:
        """A new app: --setup-git, then the timed first push. Named `name`, the app is not
        one of the N measured (the first provisioning's)."""
        counted = name is None
        name = name or self.name(len(self.projects) + 1)
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
        if counted:
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
        # Steady state: past the last deploy's work and its app's first (full) health check.
        time.sleep(SETTLE)
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
        row.app_lines = sum(1 for line in journal.splitlines() if APP_LINE.search(line))
        n = len(self.projects)
        row.pss_per_app = b["pss"].get("apps", 0) / n
        row.rss_per_app = b["rss"].get("apps", 0) / n
        row.watcher_pss = b["pss"].get("watcher", 0)

    def reboot(self, row: Row) -> None:
        """A Caddy restart, then a power-off and boot: when every app answers through Caddy."""
        row.restart_answers = answer_timing.after_caddy_restart(self.config)
        answers, self.config = answer_timing.after_reboot(self.config)
        row.boot_answers = answers
        status = json.loads(ts.run_script("status", "--json").stdout)
        boot = _process_start_boottime(int(status["pid"]))
        epoch_offset = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        if answers.last_answer is None:
            print(f"  after the reboot {len(answers.unanswered())} app(s) did not answer within 120 s")
            return
        row.boot_to_all = answers.last_answer - (boot + epoch_offset)


def _process_start_boottime(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[19]) / _hz()


def _hz() -> int:
    import os

    return os.sysconf("SC_CLK_TCK")


def first_provisioning(bench: Bench) -> None:
    du = "du -sxb /usr /var /etc /opt 2>/dev/null | awk '{ s += $1 } END { print s }'"
    before = int(bench.ssh(du))
    took = bench.add_app(PROVISIONING_APP)
    after = int(bench.ssh(du))
    left = bench.ssh("du -sxb /var/cache/apt/archives /root/.npm /usr/local/lib/node_modules/bun/node_modules/@oven"
                     " 2>/dev/null || true")
    print(f"First provisioning (fresh server, first app's push): {took:.0f} s, "
          f"disk +{(after - before) / 2**20:.0f} MB (/usr /var /etc /opt)")
    print("  left behind: " + "; ".join(f"{p} {int(b) / 2**20:.1f} MB" for b, p in
                                        (line.split("\t") for line in left.splitlines())))
    # N = 1 then measures a new app's first deploy on the provisioned server, like every N.
    bench.ssh(f"/opt/tova/toolkit/bin/tova-release remove {PROVISIONING_APP} --yes")


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
            print_row(row)
    return rows


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def figures(r: Row) -> dict[str, str]:
    """One row of the summary table: the column's heading, the figure."""
    w = r.idle_seconds or 1
    boot, restart = r.boot_answers, r.restart_answers
    return {
        "N": str(r.n),
        "1st deploy (median)": f"{r.first_deploy:.2f}s ({r.first_deploy_median:.2f}s)",
        "redeploy": f"{r.redeploy:.2f}s",
        "watcher cores/app": f"{r.cpu.get('watcher', 0) / w / r.n:.6f}",
        "journal/h": f"{r.journal_lines * 3600 / w:.0f}",
        "journal/h/app": f"{r.journal_lines * 3600 / w / r.n:.1f}",
        "health lines/app/day": f"{(r.watcher_lines + r.app_lines) * 86400 / w / r.n:.0f}",
        "PSS/app": f"{r.pss_per_app / 2**20:.1f}MB",
        "boot->all": _s(r.boot_to_all),
        "listen->answer boot max (median)": f"{_s(boot.worst if boot else None)} "
                                            f"({_s(boot.median if boot else None)})",
        "after Caddy restart max": _s(restart.worst if restart else None),
    }


def print_row(r: Row) -> None:
    w = r.idle_seconds or 1
    cores = {k: v / w for k, v in r.cpu.items()}
    f = figures(r)
    print(f"\nN = {r.n}  (host load average now: {Path('/proc/loadavg').read_text().strip()})")
    print(f"  deploy    first {f['1st deploy (median)']} (goal <= {GOAL_DEPLOY:.0f} s), redeploy {f['redeploy']}")
    print(f"  idle CPU  watcher {cores.get('watcher', 0):.6f} cores = {f['watcher cores/app']} per app "
          f"(goal <= {GOAL_CORES_PER_APP}); apps {cores.get('apps', 0):.4f}, caddy {cores.get('caddy', 0):.4f}, "
          f"journald {cores.get('journald', 0):.4f}, systemd {cores.get('systemd', 0):.4f} "
          f"(over {w:.0f} s)")
    print(f"  journal   {f['journal/h']} lines/h on the server, {f['journal/h/app']} per app; health checking "
          f"{f['health lines/app/day']} lines per app per day (goal <= {GOAL_LINES_PER_APP_DAY}; watcher's own "
          f"{r.watcher_lines}, apps' {r.app_lines} in {w:.0f} s; each instance's hourly full check, a GET "
          f"the app logs, falls in a window this short only by chance)")
    print(f"  memory    PSS {f['PSS/app']} per app (RSS {r.rss_per_app / 2**20:.1f} MB), watcher "
          f"{r.watcher_pss / 2**20:.1f} MB")
    for what, answers in (("reboot", r.boot_answers), ("Caddy restart", r.restart_answers)):
        if answers is None:
            continue
        since = "its first instance listening" if what == "reboot" else "the restart"
        extra = f"; boot -> every app answering {_s(r.boot_to_all)}" if what == "reboot" else ""
        print(f"  {what}: from {since} to answering through Caddy (goal <= 2 s): {answers.summary()}{extra}")
    sys.stdout.flush()


def print_table(rows: list[Row]) -> None:
    table = [figures(r) for r in rows]
    widths = {k: max(len(k), *(len(t[k]) for t in table)) for k in table[0]}
    print()
    print("  ".join(k.rjust(widths[k]) for k in widths))
    for t in table:
        print("  ".join(t[k].rjust(widths[k]) for k in widths))


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
    rows = run(args)
    if rows:
        print_table(rows)
    print(f"\nGoals: first deploy of a new app <= {GOAL_DEPLOY:.0f} s; watcher <= {GOAL_CORES_PER_APP} cores per app;"
          f" <= {GOAL_LINES_PER_APP_DAY} health lines per app per day; every app answering within 2 s of its"
          " instances listening, after a reboot and after a Caddy restart.")
    print("CPU columns are cores averaged over the idle window; 'systemd' includes every service that ran and"
          " ended in it (per-app timers would show there).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
