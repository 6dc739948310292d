"""The server-wide health watcher on the real Debian test server (issue 16 §2): one
tova-health.service for every app, silent while all is well, and an instance that stops
answering (SIGSTOP: its unit stays active, its port stops answering) is restarted within
two health intervals.

Uses the running test server as it is (booted if needed, not reset) and removes its app."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Project, check, configure_server  # noqa: E402

pytestmark = pytest.mark.e2e

e2e_support.skip_module_without_test_server()

INTERVAL = 5
APP = f"""// health watcher e2e app
server {{
  fn home() {{ text("watched") }}
  fn healthz() {{ text("ok") }}

  route GET "/" => home
  route GET "/healthz" => healthz
}}

deploy "prod" {{
  server: "tova-testserver"
  domain: "watched.tova.test"
  instances: 2
  memory: "64mb"
  health_interval: {INTERVAL}
  health_timeout: 2
}}
"""
STARTUP_DEADLINE = 30  # ServerSettings.startup_deadline: younger instances are left alone


def _ok(config: Path, cmd: str) -> str:
    return check(ts.ssh(cmd, config=config), cmd).stdout


def _main_pid(config: Path, unit: str) -> int:
    return int(_ok(config, f"systemctl show -p MainPID --value {unit}").strip())


def test_watcher_restarts_an_instance_that_stops_answering_and_is_quiet_otherwise():
    config = ts.ensure_up()
    configure_server(config)
    env = {**ts.ssh_env(config), "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory(prefix="e2e-watch-") as tmp:
        root = Path(tmp) / "watched"
        (root / "src").mkdir(parents=True)
        (root / "tova.toml").write_text('[project]\nname = "watched"\nentry = "src"\n')
        (root / "src" / "app.tova").write_text(APP)
        p = Project(root, env)
        p.git("init", "-q", "-b", "main")
        p.commit("v1")
        # A run that died half-way may have left the app behind: start from none.
        _ok(config, "if [ -d /opt/tova/apps/watched ]; then tova-release remove watched --yes; fi")
        check(p.tova("deploy", "prod", *SETUP_GIT), "setup-git")
        try:
            out = p.push()
            assert "Live at https://watched.tova.test" in out.stderr, out.stderr
            ports = [int(x) for x in re.findall(r"\d+", _ok(
                config, "python3 -c 'import json; print(json.load(open(\"/opt/tova/registry.json\"))"
                        "[\"apps\"][\"watched\"][\"ports\"])'"))]
            units = [f"tova-watched@{port}.service" for port in ports]
            # One watcher for the server, no timer or script per app.
            assert _ok(config, "systemctl is-active tova-health.service").strip() == "active"
            timers_and_units = _ok(config, "systemctl list-timers --all --no-legend; ls /etc/systemd/system")
            assert "tova-watched-health" not in timers_and_units
            assert _ok(config, "test -e /opt/tova/apps/watched/health-check.sh || echo absent").strip() == "absent"

            # Quiet while all is well (and instances old enough for the watcher to act on).
            since = _ok(config, "date +%s").strip()
            time.sleep(STARTUP_DEADLINE + 1)
            quiet = _ok(config, f"journalctl -q -o cat -t tova-health --since @{since} | wc -l").strip()
            assert quiet == "0"

            victim, other = units
            old_pid, other_pid = _main_pid(config, victim), _main_pid(config, other)
            stopped_at = time.monotonic()
            _ok(config, f"kill -STOP {old_pid}")
            restarted = None
            while time.monotonic() - stopped_at < 4 * INTERVAL:
                pid = _main_pid(config, victim)
                if pid not in (0, old_pid):
                    restarted = time.monotonic() - stopped_at
                    break
                time.sleep(0.25)
            assert restarted is not None, _ok(config, "journalctl -q -o cat -t tova-health | tail -5")
            assert restarted <= 2 * INTERVAL, f"restarted after {restarted:.1f}s (interval {INTERVAL}s)"
            print(f"\nstopped instance restarted after {restarted:.1f}s (health_interval {INTERVAL}s)")
            assert _main_pid(config, other) == other_pid  # the healthy instance was left alone
            lines = _ok(config, f"journalctl -q -o cat -t tova-health --since @{since}").splitlines()
            assert lines == [f"{victim}: health check /healthz failed twice; restarting"], lines
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if ts.ssh(f"curl -fsS http://127.0.0.1:{ports[0]}/healthz", config=config).returncode == 0:
                    break
                time.sleep(0.25)
            else:
                pytest.fail("the restarted instance does not answer")
        finally:
            p.tova("deploy", "prod", "--remove", "--yes")
