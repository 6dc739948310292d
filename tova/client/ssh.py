"""The system `ssh` client, driven through `sh`: one multiplexed connection per command.

Using the user's own ssh (not a Python SSH library) means ~/.ssh/config aliases, agents,
ProxyJump and known_hosts all work as they do in a terminal. A Connection opens one master
(ControlMaster in a private 0700 socket dir, short ControlPersist) and every remote
command of the tova command rides on it; `close()` ends it with `ssh -O exit`.

Remote commands are argument lists, quoted once with shlex.join for the remote shell;
nothing is interpolated into a command string."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sh

from tova.client import failures
from tova.errors import TovaError

# How a command's output reaches the user while it runs: False kept only, True stdout and
# stderr copied to ours, "err" stderr only, a function: each stderr line handed to it
# (a progress printer), stdout kept.
Stream = bool | str | Callable[[str], None]

CONNECT_TIMEOUT = 15
PERSIST = "60"  # seconds the master outlives an unexpected exit of ours

# user@host, user@host:port, host, host:port, user@[v6]:port
_TARGET_RE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


@dataclass(frozen=True)
class Target:
    """Where to connect. `host` may be an ssh_config alias; user and port are None when
    left to ssh's own configuration."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        m = _TARGET_RE.match(text.strip())
        if not m or (m["host"] or "").startswith("-"):
            raise TovaError(
                f"invalid server {text!r}",
                hint="use user@host, user@host:port or a Host alias from your ssh config",
            )
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise TovaError(f"invalid port in server {text!r}", hint="ports are 1-65535")
        return cls(host=m["v6"] or m["host"], user=m["user"], port=port)

    @property
    def destination(self) -> str:
        """What goes on ssh's command line (the port goes in -p)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"{self.user}@{host}" if self.user else host
        return f"{base}:{self.port}" if self.port else base

    def ssh_command(self) -> str:
        """How a user reaches this server by hand: `ssh [-p PORT] DESTINATION`."""
        return f"ssh -p {self.port} {self.destination}" if self.port else f"ssh {self.destination}"

    def git_url(self, path: str) -> str:
        """scp-like `user@host:/path`, or ssh://user@host:port/path when a port is given
        (the scp form cannot carry one)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userpart = f"{self.user}@" if self.user else ""
        if self.port:
            return f"ssh://{userpart}{host}:{self.port}{path}"
        return f"{userpart}{host}:{path}"


@dataclass
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def ssh_config_file() -> str | None:
    """TOVA_SSH_CONFIG: an ssh_config passed as -F (tests, or a dedicated config)."""
    return os.environ.get("TOVA_SSH_CONFIG") or None


@dataclass
class Connection:
    target: Target
    config: str | None = field(default_factory=ssh_config_file)
    _dir: Path | None = None
    _open: bool = False

    # ---- argument builders (pure) ----
    def base_options(self, *, master: bool = False) -> list[str]:
        opts: list[str] = []
        if self.config:
            opts += ["-F", self.config]
        if self._dir is not None:
            # Only the opening call may become a master: a later call with
            # ControlMaster=auto would fork a new persistent master holding our pipes
            # open if the first one had gone away.
            opts += ["-o", f"ControlPath={self._dir / 'mux'}"]
            opts += ["-o", "ControlMaster=auto" if master else "ControlMaster=no"]
            if master:
                opts += ["-o", f"ControlPersist={PERSIST}"]
        opts += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ServerAliveInterval=15"]
        if self.target.port:
            opts += ["-p", str(self.target.port)]
        return opts

    def ssh_argv(self, remote_argv: list[str] | None, *, tty: bool = False, batch: bool = True) -> list[str]:
        args = self.base_options()
        if batch:
            args += ["-o", "BatchMode=yes"]
        args += ["-t"] if tty else ["-T"]
        args += [self.target.destination]
        if remote_argv is not None:
            args += ["--", shlex.join(remote_argv)]
        return args

    def git_ssh_command(self) -> str:
        """GIT_SSH_COMMAND riding on the same master (git adds -p itself for ssh:// URLs)."""
        opts = self.base_options()
        if self.target.port:
            i = opts.index("-p")
            del opts[i : i + 2]
        return shlex.join(["ssh", *opts, "-o", "BatchMode=yes"])

    # ---- I/O ----
    def open(self) -> None:
        """Authenticate once and leave a master running; map failures to one line."""
        if self._open:
            return
        if shutil.which("ssh") is None:
            raise TovaError("the ssh client is not installed", hint="install OpenSSH (apt-get install openssh-client)")
        self._dir = Path(tempfile.mkdtemp(prefix="tova-ssh-"))
        os.chmod(self._dir, 0o700)
        args = self.base_options(master=True) + ["-o", "BatchMode=yes", "-N", "-f", self.target.destination]
        res = _run(args, stdin=None)
        if res.exit_code != 0:
            self._cleanup_dir()
            raise failures.from_ssh_failure(self.target.display(), res.exit_code, res.err)
        self._open = True

    def run(
        self,
        remote_argv: list[str],
        stdin: bytes | None = None,
        stream: Stream = False,
    ) -> Result:
        """Run one remote command. stream (see Stream) shows its output as it arrives (and
        it is still returned). ssh's own failures (exit 255) raise RemoteError."""
        self.open()
        res = _run(self.ssh_argv(remote_argv), stdin=stdin, stream=stream)
        if res.exit_code == 255:
            raise failures.from_ssh_failure(self.target.display(), res.exit_code, res.err)
        return res

    def run_attached(self, remote_argv: list[str]) -> int:
        """Run one remote command with its output going straight to our stdout and stderr
        (no copy kept here): for output of any length, `--follow` included. A reader
        that goes away (`| head -1`) ends ssh with SIGPIPE, which counts as success."""
        import signal
        import subprocess

        self.open()
        sys.stdout.flush()
        with _exit_on(signal.SIGTERM, signal.SIGHUP):
            proc = subprocess.run(["ssh", *self.ssh_argv(remote_argv)], stdin=subprocess.DEVNULL, check=False)
        if proc.returncode == -signal.SIGPIPE:
            return 0
        return proc.returncode

    def interactive(self, remote_argv: list[str] | None = None) -> int:
        """A terminal session (`ssh -t`), attached to ours."""
        self.open()
        cmd = sh.Command("ssh")
        p = cmd(
            *self.ssh_argv(remote_argv, tty=True, batch=False), _fg=True, _ok_code=list(range(256)), _return_cmd=True
        )
        return p.exit_code

    def close(self) -> None:
        if self._open and self._dir is not None:
            _run(self.base_options() + ["-O", "exit", self.target.destination], stdin=None)
        self._open = False
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _exit_on(*signums: int) -> Iterator[None]:
    """While an attached ssh runs, these signals end us by an exception, not on the spot:
    subprocess.run then kills that ssh and close() stops the master. Killed outright, we
    left both behind, writing the remote output (and its errors) into the terminal after
    the shell had its prompt back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # (one that is ignored, as under nohup, stays ignored)
    old = {n: signal.signal(n, leave) for n in signums if signal.getsignal(n) is signal.SIG_DFL}
    try:
        yield
    finally:
        for n, handler in old.items():
            signal.signal(n, handler)


def _run(args: list[str], stdin: bytes | None, stream: Stream = False) -> Result:
    return run_local(["ssh", *args], stdin=stdin, stream=stream)


def run_local(
    argv: list[str],
    stdin: bytes | None = None,
    stream: Stream = False,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Result:
    """Run a local program through `sh`; never raises on a non-zero exit.
    stream: see Stream."""
    out: list[bytes] = []
    err: list[bytes] = []
    kwargs: dict[str, Any] = dict(_ok_code=list(range(256)), _return_cmd=True, _tty_out=False, _decode_errors="replace")
    if stdin is not None:
        kwargs["_in"] = stdin
    if env is not None:
        kwargs["_env"] = env
    if cwd is not None:
        kwargs["_cwd"] = str(cwd)
    if callable(stream):
        kwargs["_out"] = _tee(out, None)
        kwargs["_err"] = _lines(err, stream)
    elif stream:
        kwargs["_out"] = _tee(out, sys.stdout if stream is True else None)
        kwargs["_err"] = _tee(err, sys.stderr)
        # Line-buffered (sh's default): whole lines, so a multi-byte ✓ is never split
        # across two chunks and decoded into garbage.
    try:
        p = sh.Command(argv[0])(*argv[1:], **kwargs)
    except sh.CommandNotFound:
        raise TovaError(f"{argv[0]} is not installed", hint=f"install {argv[0]} and try again") from None
    if stream:
        return Result(p.exit_code, b"".join(out), b"".join(err))
    return Result(p.exit_code, p.stdout, p.stderr)


def _lines(sink: list[bytes], show: Callable[[str], None]) -> Callable[[object], None]:
    def write(chunk: object) -> None:
        data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
        sink.append(data)
        show(data.decode("utf-8", "replace"))

    return write


def _tee(sink: list[bytes], stream: IO[str] | None) -> Callable[[object], None]:
    def write(chunk: object) -> None:
        data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
        sink.append(data)
        if stream is None:
            return
        stream.buffer.write(data) if hasattr(stream, "buffer") else stream.write(data.decode("utf-8", "replace"))
        stream.flush()

    return write
