"""The build sandbox: pushed code (the compiler reading the checkout's bunfig.toml, a
package installer running install scripts) never runs as root.

Each app has its own build user (naming.build_user). A tool runs as that user in a
transient systemd service that sees the deploy's work directory and nothing else of the
toolkit's root: other apps, the registry, the server settings, archived dumps and the
proxy's state are hidden, the rest of the filesystem is read-only, and it cannot gain
privileges. The work directory (checkout and output) belongs to the build user; root only
takes the finished output afterwards (release_tree.seal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tova.layout import Layout

# Server secrets outside the toolkit root a build never needs (missing ones are skipped).
HIDDEN_SYSTEM_PATHS = (
    "/etc/caddy", "/var/lib/caddy", "/etc/redis", "/var/lib/redis", "/run/redis",
    "/etc/postgresql", "/var/lib/postgresql", "/etc/ssh", "/etc/systemd", "/var/log",
)
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ToolRun:
    """One run of pushed-code tooling: argv in cwd, writing only under `workdir`."""

    argv: list[str]
    cwd: Path
    workdir: Path
    user: str
    env: dict[str, str] = field(default_factory=dict)
    read_only: tuple[Path, ...] = ()  # shown read-only though under the hidden apps dir
    unit: str = "tova-build"
    timeout_s: int = 1800
    memory_max: str = "2G"


def home_dir(workdir: Path) -> Path:
    """The build user's HOME (caches of bun, npm) inside the work directory."""
    return workdir / "home"


def tool_env(run: ToolRun) -> dict[str, str]:
    env = {"PATH": TOOL_PATH, "HOME": str(home_dir(run.workdir)), "LANG": "C.UTF-8"}
    env.update(run.env)
    return env


def systemd_run_argv(run: ToolRun, layout: Layout) -> list[str]:
    """`systemd-run` for one sandboxed tool run (pure: an argv list, never a shell line)."""
    root = layout.root
    props = [
        f"User={run.user}", f"Group={run.user}",
        f"WorkingDirectory={run.cwd}",
        # Every app directory disappears; only this deploy's work directory comes back.
        f"TemporaryFileSystem={layout.apps_dir}:ro",
        f"BindPaths={run.workdir}", f"ReadWritePaths={run.workdir}",
        # The app's npm dependencies for the compiler to bundle (deps.build_copy).
        *(f"BindReadOnlyPaths={p}" for p in run.read_only),
        *(f"InaccessiblePaths=-{p}" for p in (
            layout.registry, layout.registry_lock, root / "config.toml", layout.archive_dir,
            layout.caddy_dir, layout.run_dir, *HIDDEN_SYSTEM_PATHS)),
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
        "NoNewPrivileges=yes", "RestrictSUIDSGID=yes", "CapabilityBoundingSet=",
        "AmbientCapabilities=", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectClock=yes",
        "ProtectHostname=yes", "ProtectProc=invisible", "RestrictNamespaces=yes",
        "RestrictRealtime=yes", "LockPersonality=yes", "KeyringMode=private",
        "UMask=0022", f"RuntimeMaxSec={run.timeout_s}", f"MemoryMax={run.memory_max}",
        # Whatever the tool started ends with it.
        "KillMode=control-group", "SendSIGHUP=yes",
    ]
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
            f"--unit={run.unit}"]
    for p in props:
        argv += ["-p", p]
    for k, v in tool_env(run).items():
        argv += [f"--setenv={k}={v}"]
    return [*argv, "--", *run.argv]
