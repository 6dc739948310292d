"""A real OpenSSH server on a loopback port, for driving the client end to end.

Starts Debian's /usr/sbin/sshd in the foreground (-D) with a throwaway host key, one
authorized key generated for the test, and a private config; never port 22, never the
host's own sshd. Also writes an ssh_config with a Host alias (`tova-test`) that pins the
host key, for the client to use through TOVA_SSH_CONFIG. Stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
ALIAS = "tova-test"


def available() -> bool:
    return Path(SSHD).is_file() and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class SshServer:
    dir: Path
    port: int
    host_key: Path
    client_key: Path
    ssh_config: Path
    known_hosts: Path
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        """`root@127.0.0.1:PORT`: the client's own user@host:port form."""
        return f"root@127.0.0.1:{self.port}"

    def write_ssh_config(
        self, path: Path, *, identity: Path | None = None, known_hosts: Path | None = None, port: int | None = None
    ) -> Path:
        """An ssh_config for the client: alias `tova-test` and 127.0.0.1 both pinned to
        this server's host key (or another known_hosts, to test mismatches)."""
        kh = known_hosts or self.known_hosts
        ident = identity or self.client_key
        common = (
            f"    User root\n"
            f"    IdentityFile {ident}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {kh}\n"
            f"    GlobalKnownHostsFile /dev/null\n"
            f"    StrictHostKeyChecking yes\n"
            f"    UpdateHostKeys no\n"
            f"    LogLevel ERROR\n"
        )
        path.write_text(
            f"Host {ALIAS}\n    HostName 127.0.0.1\n    Port {port or self.port}\n{common}"
            f"Host 127.0.0.1\n{common}"
        )
        return path

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        cfg = self.dir / "sshd_config"
        cfg.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PrintMotd no\n"
            "MaxStartups 50\n"
            "MaxSessions 50\n"
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        log = open(self.dir / "sshd.log", "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: " + (self.dir / "sshd.log").read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def make_server(dir: Path) -> SshServer:
    dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host_key = dir / "host_ed25519"
    client_key = dir / "client_ed25519"
    _keygen(host_key, "tova-test-host")
    _keygen(client_key, "tova-test-client")
    (dir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    pub = host_key.with_suffix(".pub").read_text().split()
    known = dir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    server = SshServer(dir, port, host_key, client_key, dir / "ssh_config", known)
    server.write_ssh_config(server.ssh_config)
    return server
