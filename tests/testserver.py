"""Helpers for end-to-end tests on the local Debian test server (vagrant/testserver).

    from tests import testserver as ts   # or: import testserver (tests/ on sys.path)

    reason = ts.unavailable_reason()      # None, or why e2e tests must be skipped
    config = ts.ensure_up()               # Path of the ssh_config; boots the server if needed
    ts.ssh("systemctl is-active caddy")   # CompletedProcess (text, captured, never raises)
    ts.reset()                            # fresh server from the cached base
    env = ts.ssh_env()                    # GIT_SSH_COMMAND / TOVA_SSH_CONFIG for git and tova

The server is shared by everything on the machine; testserver serialises its own commands.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "vagrant" / "testserver"
HOST = "tova-testserver"  # the Host alias defined in the ssh_config
REQUIRED_TOOLS = ("systemd-nspawn", "debootstrap", "iptables", "ip", "nsenter",
                  "ssh", "ssh-keygen", "ssh-keyscan")


def unavailable_reason() -> str | None:
    """Why the test server cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the test server needs root (network namespaces, iptables, systemd-nspawn)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return ("missing " + ", ".join(missing) + ": apt-get install -y systemd-container "
                "debootstrap iptables openssh-client")
    return None


def run_script(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run vagrant/testserver; output captured as text, no exception on failure."""
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def _config_path(proc: subprocess.CompletedProcess, what: str) -> Path:
    if proc.returncode != 0:
        raise RuntimeError(f"testserver {what} failed (exit {proc.returncode}):\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def ensure_up() -> Path:
    """Boot the server unless it is running; return the ssh_config path."""
    return _config_path(run_script("up"), "up")


def reset() -> Path:
    """Power off, replace the root filesystem with a fresh copy of the base, boot."""
    return _config_path(run_script("reset"), "reset")


def down() -> None:
    proc = run_script("down")
    if proc.returncode != 0:
        raise RuntimeError(f"testserver down failed (exit {proc.returncode}):\n{proc.stderr}")


def is_running() -> bool:
    return run_script("status").returncode == 0


def ssh(cmd: str, *, timeout: float = 600, input: str | None = None,
        config: Path | None = None) -> subprocess.CompletedProcess:
    """Run a shell command line as root on the server (booting it first if needed)."""
    config = config or ensure_up()
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", HOST, cmd],
                          capture_output=True, text=True, timeout=timeout, input=input)


def ssh_env(config: Path | None = None) -> dict[str, str]:
    """Environment for git and tova so `tova-testserver` resolves through the ssh_config."""
    config = config or ensure_up()
    return {**os.environ,
            "GIT_SSH_COMMAND": f"ssh -F {shlex.quote(str(config))} -o BatchMode=yes",
            "TOVA_SSH_CONFIG": str(config)}
