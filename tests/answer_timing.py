"""How soon every app on the test server answers through Caddy after a reboot and after a
Caddy restart (issue 16: within 2 s of its instances listening), measured on the server by
answer_probe.py; shared by the reboot e2e test and bench_many_apps.py."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import testserver as ts
from e2e_support import check

PROBE = Path(__file__).resolve().parent / "answer_probe.py"
PROBE_PATH = "/usr/local/sbin/tova-answer-probe"
BOOT_OUT = "/var/tmp/tova-answer-probe.boot"
RESTART_OUT = "/var/tmp/tova-answer-probe.restart"
# Started before the apps and Caddy (no default dependencies), so it sees them all start.
UNIT = f"""[Unit]
Description=test probe: when each app listens and answers through Caddy after a boot
DefaultDependencies=no
After=local-fs.target

[Service]
Type=oneshot
# The measuring instrument must not wait for the CPU behind the instances starting.
Nice=-10
ExecStart=/usr/bin/python3 {PROBE_PATH} {BOOT_OUT}

[Install]
WantedBy=sysinit.target
"""


@dataclass(frozen=True)
class Answers:
    """Per app: seconds from its first instance listening (or, after a Caddy restart, from
    the restart: its instances listened throughout) to Caddy's first answer for it; None
    when it did not answer in time."""

    gaps: dict[str, float | None]
    # Epoch seconds, for figures from elsewhere (the boot's start).
    last_answer: float | None
    # Apps none of whose instances listened (a crashed release): nothing for Caddy to answer.
    silent: tuple[str, ...] = ()

    @property
    def worst(self) -> float | None:
        values = list(self.gaps.values())
        return None if not values or None in values else max(v for v in values if v is not None)

    @property
    def median(self) -> float | None:
        values = [v for v in self.gaps.values() if v is not None]
        return statistics.median(values) if values else None

    def unanswered(self) -> list[str]:
        return sorted(app for app, gap in self.gaps.items() if gap is None)

    def summary(self) -> str:
        def s(v: float | None) -> str:
            return "—" if v is None else f"{v:.2f} s"
        text = f"worst app {s(self.worst)}, median {s(self.median)} ({len(self.gaps)} apps)"
        if self.unanswered():
            text += f"; not answering: {', '.join(self.unanswered())}"
        if self.silent:
            text += f"; no instance listening: {', '.join(self.silent)}"
        return text


def _parse(text: str) -> Answers:
    data = json.loads(text)
    gaps: dict[str, float | None] = {}
    answers = []
    silent = []
    for app, t in data["apps"].items():
        if t["listening"] is None and t["answered"] is None:
            silent.append(app)
            continue
        since = data["restarted"] or t["listening"]
        gaps[app] = None if t["answered"] is None or since is None else t["answered"] - since
        if t["answered"] is not None:
            answers.append(t["answered"])
    last = max(answers) if answers and len(answers) == len(gaps) else None
    return Answers(gaps, last, tuple(sorted(silent)))


def _install(config: Path) -> None:
    check(ts.ssh(f"cat > {PROBE_PATH} && chmod 0755 {PROBE_PATH}", input=PROBE.read_text(), config=config),
          "installing the answer probe")


def after_caddy_restart(config: Path) -> Answers:
    _install(config)
    check(ts.ssh(f"nice -n -10 python3 {PROBE_PATH} {RESTART_OUT} --restart-caddy", config=config, timeout=300),
          "the answer probe (Caddy restart)")
    return _parse(check(ts.ssh(f"cat {RESTART_OUT}", config=config), "reading the probe").stdout)


def after_reboot(config: Path) -> tuple[Answers, Path]:
    """Power the server off and boot it; the probe runs from the start of the boot.
    Returns the answers and the (same) ssh config."""
    _install(config)
    check(ts.ssh(f"cat > /etc/systemd/system/tova-answer-probe.service && rm -f {BOOT_OUT} && "
                 "systemctl enable --quiet tova-answer-probe.service", input=UNIT, config=config),
          "enabling the answer probe at boot")
    ts.down()
    config = ts.ensure_up()
    try:
        for _ in range(300):
            if ts.ssh(f"test -s {BOOT_OUT}", config=config).returncode == 0:
                break
            time.sleep(0.5)
        text = check(ts.ssh(f"cat {BOOT_OUT}", config=config), "reading the probe").stdout
    finally:
        ts.ssh("systemctl disable --quiet tova-answer-probe.service; "
               "rm -f /etc/systemd/system/tova-answer-probe.service", config=config)
    return _parse(text), config
