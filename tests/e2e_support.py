"""What the end-to-end tests, the demo's checks and the zero-downtime benchmark share:
server settings for the test server, fixture projects as git repos, the real `tova` client
and `git push`, and HTTPS / WebSocket / SSE clients that reach Caddy on the test server
with the right SNI and Caddy's own local root CA."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import testserver as ts

REPO = Path(__file__).resolve().parents[1]
FIXTURE_APPS = REPO / "tests" / "fixtures" / "e2e-apps"
FIXTURE_COMPILER = REPO / "tests" / "fixtures" / "tova-fixture-compiler"
# The compiler the e2e tests upload with `--setup-git --compiler` (the offline path): the
# fixture, or a real Linux build named by TOVA_E2E_COMPILER (a binary, or a directory with
# bin/tova or bin/tova.js, such as the compiler's source with its node_modules).
E2E_COMPILER = Path(os.environ.get("TOVA_E2E_COMPILER") or FIXTURE_COMPILER)
SETUP_GIT = ("--setup-git", "--compiler", str(E2E_COMPILER))
# The test server's settings: one file, also installed by `testserver up` and used by ./demo.
SERVER_SETTINGS = (REPO / "vagrant" / "tova-testserver.toml").read_text()
CADDY_ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
GIT_ID = ["-c", "user.name=tova e2e", "-c", "user.email=e2e@tova.test"]


def skip_module_without_test_server() -> None:
    """At the top of an e2e module: skip all of it, saying why, when TOVA_SKIP_E2E=1 or the
    local test server cannot run on this machine."""
    import pytest

    if os.environ.get("TOVA_SKIP_E2E") == "1":
        pytest.skip("TOVA_SKIP_E2E=1", allow_module_level=True)
    if (reason := ts.unavailable_reason()) is not None:
        pytest.skip(f"e2e tests need the local test server: {reason}", allow_module_level=True)


def server_addr(config: Path) -> str:
    """The test server's address, from the HostName of its ssh_config."""
    m = re.search(r"^\s*HostName\s+(\S+)", config.read_text(), re.M)
    if not m:
        raise RuntimeError(f"no HostName in {config}")
    return m.group(1)


def check(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def configure_server(config: Path) -> None:
    """The test-server settings (what a user of a real server would put in
    /opt/tova/config.toml by hand); the compiler arrives with SETUP_GIT."""
    check(ts.ssh("mkdir -p /opt/tova && cat > /opt/tova/config.toml", input=SERVER_SETTINGS, config=config),
          "writing /opt/tova/config.toml")


def fetch_ca(config: Path, dest: Path) -> Path:
    """Caddy's local root CA (it exists once Caddy served a `tls internal` site)."""
    proc = check(ts.ssh(f"cat {CADDY_ROOT_CA}", config=config), "fetching Caddy's root CA")
    dest.write_text(proc.stdout)
    return dest


@dataclass
class Project:
    """A copy of a fixture project as a git repository, driven through the real client."""

    dir: Path
    env: dict[str, str]

    @classmethod
    def create(cls, fixture: str, dest: Path, env: dict[str, str]) -> Project:
        shutil.copytree(FIXTURE_APPS / fixture, dest)
        p = cls(dest, env)
        p.git("init", "-q", "-b", "main")
        p.commit("first version")
        return p

    def run(self, argv: list[str], timeout: float = 900, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout, input=input)

    def git(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return check(self.run(["git", *GIT_ID, *args], timeout=timeout), "git " + " ".join(args))

    def tova(self, *args: str, timeout: float = 900, input: str | None = None) -> subprocess.CompletedProcess:
        # The installed entry point may lag the tree; run this checkout's client.
        return self.run([sys.executable, "-m", "tova.cli", *args], timeout=timeout, input=input)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.dir / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))

    def push(self, remote: str = "prod", refspec: str = "main") -> subprocess.CompletedProcess:
        """git push; the deploy's output arrives on stderr as `remote:` lines."""
        return self.run(["git", "push", remote, refspec], timeout=900)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with the site's name as SNI and Host (curl --resolve)."""

    def __init__(self, addr: str, domain: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(domain, 443, context=context, timeout=timeout)
        self._addr = addr

    def connect(self) -> None:
        sock = socket.create_connection((self._addr, 443), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Https:
    """A client for sites Caddy serves on the test server, verified with Caddy's CA."""

    def __init__(self, addr: str, cafile: Path) -> None:
        self.addr = addr
        self.context = ssl.create_default_context(cafile=str(cafile))

    def connection(self, domain: str, timeout: float = 15) -> http.client.HTTPSConnection:
        return _SniConnection(self.addr, domain, self.context, timeout)

    def get(self, domain: str, path: str = "/", timeout: float = 15) -> tuple[int, str]:
        status, _, body = self.request(domain, "GET", path, timeout)
        return status, body

    def request(self, domain: str, method: str, path: str, timeout: float = 15,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """Status, headers (lower-case names) and body of one request."""
        conn = self.connection(domain, timeout)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
        finally:
            conn.close()

    def sse(self, domain: str, path: str, timeout: float = 15) -> tuple[str, list[str]]:
        """The content type and the `data:` lines of an event stream read to its end."""
        conn = self.connection(domain, timeout)
        try:
            conn.request("GET", path, headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            body = resp.read().decode()
            return resp.getheader("content-type", ""), [
                line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
        finally:
            conn.close()

    def websocket_echo(self, domain: str, message: str, path: str = "/ws", timeout: float = 15) -> list[str]:
        """Upgrade through Caddy, read the greeting, send one text frame, read the echo."""
        raw = socket.create_connection((self.addr, 443), timeout)
        sock = self.context.wrap_socket(raw, server_hostname=domain)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                if not chunk:
                    raise AssertionError(f"connection closed during the upgrade: {head!r}")
                head += chunk
            status = head.split(b"\r\n", 1)[0].decode()
            if " 101 " not in status + " ":
                raise AssertionError(f"no WebSocket upgrade: {head.decode(errors='replace')}")
            frames = [_read_frame(sock)]
            payload = message.encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            assert len(payload) < 126
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            frames.append(_read_frame(sock))
            return frames
        finally:
            sock.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("WebSocket closed early")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> str:
    b0, b1 = _recv_exact(sock, 2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    if b1 & 0x80:
        _recv_exact(sock, 4)  # servers do not mask, but be lenient
    payload = _recv_exact(sock, length)
    if b0 & 0x0F != 0x1:
        raise AssertionError(f"expected a text frame, got opcode {b0 & 0x0F}")
    return payload.decode()


class World:
    """The shared server and the projects deployed on it, filled in scenario by scenario."""

    def __init__(self, config: Path, tmp: Path) -> None:
        self.config = config
        self.tmp = tmp
        self.env = {**ts.ssh_env(config), "TOVA_NO_COLOR": "1", "NO_COLOR": "1"}
        self.addr = server_addr(config)
        self.https: Https | None = None
        self.projects: dict[str, Project] = {}

    def ssh(self, cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return ts.ssh(cmd, config=self.config, timeout=timeout)

    def ok(self, cmd: str) -> str:
        return check(self.ssh(cmd), cmd).stdout

    def web(self) -> Https:
        if self.https is None:
            self.https = Https(self.addr, fetch_ca(self.config, self.tmp / "caddy-root.crt"))
        return self.https

    def release_json(self, *args: str) -> dict:
        return json.loads(self.ok("tova-release " + " ".join(map(shlex.quote, args)) + " --json"))

    def env_file(self, app: str) -> dict[str, str]:
        text = self.ok(f"cat /opt/tova/apps/{app}/.env.production")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
