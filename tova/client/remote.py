"""The server as the client sees it: `tova-release` invocations over one ssh connection.

Where things live on the server comes from the environment of the *client*:
  TOVA_REMOTE_ROOT   the server's root (default /opt/tova); passed on as TOVA_ROOT
  TOVA_REMOTE_SYSTEM passed on as TOVA_SYSTEM (tests use `local`: plain processes)
  TOVA_REMOTE_LINK_DIR where the tova-release symlink goes (default /usr/local/bin)
Only non-default values are sent, as an `env NAME=value` prefix of the remote argv."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tova import remedies
from tova.client import failures
from tova.client.scripts import server_script
from tova.client.ssh import Connection, Result, Stream, Target
from tova.errors import EXIT_REMOTE, TovaError
from tova.layout import Layout
from tova.settings import DEFAULT_ROOT

DEFAULT_LINK_DIR = "/usr/local/bin"
CONFIG_MARKER = "--- config.toml"  # probe.sh: the settings file's text follows this line



@dataclass(frozen=True)
class RemoteEnv:
    root: str = DEFAULT_ROOT
    system: str | None = None
    link_dir: str = DEFAULT_LINK_DIR

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> RemoteEnv:
        env = os.environ if environ is None else environ
        return cls(
            root=env.get("TOVA_REMOTE_ROOT") or DEFAULT_ROOT,
            system=env.get("TOVA_REMOTE_SYSTEM") or None,
            link_dir=env.get("TOVA_REMOTE_LINK_DIR") or DEFAULT_LINK_DIR,
        )

    def variables(self) -> dict[str, str]:
        v: dict[str, str] = {}
        if self.root != DEFAULT_ROOT:
            v["TOVA_ROOT"] = self.root
        if self.system:
            v["TOVA_SYSTEM"] = self.system
        return v

    def prefix(self) -> list[str]:
        v = self.variables()
        return ["env", *(f"{k}={val}" for k, val in v.items())] if v else []

    @property
    def layout(self) -> Layout:
        return Layout.of(self.root)  # a POSIX path on the server, as on this client

    @property
    def toolkit(self) -> str:
        return str(self.layout.toolkit)

    @property
    def tova_release(self) -> str:
        return str(self.layout.tova_release)

    def repo_path(self, app: str) -> str:
        return str(self.layout.app(app).repo)


@dataclass
class Probe:
    uid: int
    user: str
    sudo: bool = False
    python3: bool = False
    venv: bool = False
    apt: bool = False
    toolkit: bool = False
    repo: bool = False
    git: bool = False  # git-receive-pack, which `git push` over SSH runs on the server
    pyver: str = ""
    machine: str = ""
    libc: str = ""
    installed: frozenset[str] = frozenset()  # of caddy, bun, postgresql, redis: what provisioning skips
    mem_total: int | None = None  # the server's RAM in bytes
    config_toml: str | None = None  # <root>/config.toml's text; None: no such file (or unreadable)

    @classmethod
    def parse(cls, text: str) -> Probe:
        facts, marker, config = ("\n" + text).partition(f"\n{CONFIG_MARKER}\n")
        kv = dict(line.split("=", 1) for line in facts.splitlines() if "=" in line)
        return cls(
            uid=int(kv.get("uid", "-1") or -1),
            user=kv.get("user", "?"),
            sudo=kv.get("sudo") == "1",
            python3=kv.get("python3") == "1",
            venv=kv.get("venv") == "1",
            apt=kv.get("apt") == "1",
            toolkit=kv.get("toolkit") == "1",
            repo=kv.get("repo") == "1",
            git=kv.get("git") == "1",
            pyver=kv.get("pyver", ""),
            machine=kv.get("machine", ""),
            libc=kv.get("libc", ""),
            installed=frozenset(n for n in ("caddy", "bun", "postgresql", "redis") if kv.get(n) == "1"),
            mem_total=int(kv["mem"]) if kv.get("mem", "").isdigit() else None,
            config_toml=config if marker else None,
        )


@dataclass
class Server:
    """One server, one connection, for the length of one tova command."""

    target: Target
    env_name: str | None  # the deploy environment (for hints); None: not known (--list)
    renv: RemoteEnv = field(default_factory=RemoteEnv.from_environ)
    conn: Connection = field(init=False)
    _probe: Probe | None = None

    def __post_init__(self) -> None:
        self.conn = Connection(self.target)

    @property
    def display(self) -> str:
        return self.target.display()

    def connect(self) -> None:
        self.conn.open()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- facts ----
    def probe(self, app: str = "", *, refresh: bool = False) -> Probe:
        if self._probe is None or refresh:
            res = self.conn.run(["sh", "-c", server_script("probe.sh"), "sh", self.renv.root, app])
            if res.exit_code != 0:
                raise failures.from_remote_failure(self.display, "probing the server", res.exit_code, res.err)
            self._probe = Probe.parse(res.out)
            if self._probe.uid != 0 and not self._probe.sudo:
                raise failures.not_root(self.display, self._probe.user)
        return self._probe

    def privileged(self, argv: list[str]) -> list[str]:
        """argv as root: directly when we are root, else through passwordless sudo."""
        p = self.probe()
        return argv if p.uid == 0 else ["sudo", "-n", "--", *argv]

    # ---- running ----
    def run(
        self, argv: list[str], *, stdin: bytes | None = None, stream: Stream = False, root_env: bool = True
    ) -> Result:
        full = (self.renv.prefix() if root_env else []) + argv
        return self.conn.run(self.privileged(full), stdin=stdin, stream=stream)

    def run_checked(self, argv: list[str], what: str, *, stdin: bytes | None = None) -> Result:
        res = self.run(argv, stdin=stdin, root_env=False)
        if res.exit_code != 0:
            raise failures.from_remote_failure(self.display, what, res.exit_code, res.err)
        return res

    def caller(self) -> list[str]:
        """What tova-release needs to word its hints for this user (see tova.remedies)."""
        told = {remedies.CALLER_SSH: self.target.ssh_command()}
        if self.env_name:
            told[remedies.CALLER_ENV] = self.env_name
        return [f"{k}={v}" for k, v in told.items()]

    def release(self, args: list[str], *, stdin: bytes | None = None, stream: Stream = False) -> Result:
        """`tova-release ARGS`. A missing toolkit (exit 127) becomes the setup hint."""
        res = self.run(["env", *self.caller(), self.renv.tova_release, *args], stdin=stdin, stream=stream)
        if res.exit_code in (126, 127):
            raise failures.toolkit_missing(self.display, self.env_name)
        return res

    def release_attached(self, args: list[str]) -> int:
        """`tova-release ARGS` with its output going straight to ours (logs)."""
        code = self.conn.run_attached(self.privileged([*self.renv.prefix(), "env", *self.caller(),
                                                       self.renv.tova_release, *args]))
        if code in (126, 127):
            raise failures.toolkit_missing(self.display, self.env_name)
        return code

    def release_ok(self, args: list[str], *, stdin: bytes | None = None, stream: Stream = False) -> Result:
        res = self.release(args, stdin=stdin, stream=stream)
        if res.exit_code != 0:
            raise release_error(res, stream=bool(stream), env=self.env_name)
        return res

    def release_json(self, args: list[str], *, stdin: bytes | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """`tova-release ARGS --json`'s answer; its progress lines (stderr) go to progress."""
        res = self.release_ok([*args, "--json"], stdin=stdin, stream=progress or False)
        try:
            value = json.loads(res.out)
        except json.JSONDecodeError:
            raise TovaError(
                f"unexpected reply from tova-release {args[0]} on {self.display}",
                hint="the toolkit on the server may be a different version: run `tova deploy "
                f"{self.env_name or 'ENV'} --setup-git` to upgrade it",
                exit_code=EXIT_REMOTE,
            ) from None
        if not isinstance(value, dict):
            raise TovaError(f"unexpected reply from tova-release {args[0]}", exit_code=EXIT_REMOTE)
        return value


def release_error(res: Result, *, stream: bool = False, env: str | None = None) -> TovaError:
    """tova-release's own `error: ...` / `hint: ...` lines, with its exit code kept. The
    server does not know the environment's name: its `tova deploy ENV` gets the real one."""
    message, hint = "", None
    for line in res.err.splitlines():
        s = line.strip()
        if s.startswith("hint:"):
            hint = s[len("hint:") :].strip()
        elif s.startswith("error:"):
            message = s[len("error:") :].strip()
        elif s and not message and not stream:
            message = s
    if hint:  # (the server words them itself when it is told who asks; older ones are not)
        hint = remedies.for_caller(hint, env, None)
    err = TovaError(
        message or f"the server reported a failure (exit status {res.exit_code})",
        hint=hint,
        exit_code=res.exit_code or 1,
    )
    err.already_shown = stream  # streamed output already reached the user
    return err
