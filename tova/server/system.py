"""THE interface for system actions: what the pipeline, rollouts and `tova-release` need
from the host. Two implementations: SystemdSystem (tova/server/systemd.py) on a real
server, whose commands are built by tova/server/host_commands.py, and LocalSystem
(tova/server/local_system.py, TOVA_SYSTEM=local), the test double that runs instances as
child processes in a temp root. tova/server/adapters.py picks one. No other module runs
systemctl, journalctl, psql, pg_dump, redis-cli or provision.sh."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tova.layout import AppLayout, Layout
from tova.manifest import Manifest
from tova.server import upstreams
from tova.server.sandbox import ToolRun


class TextSink(Protocol):
    """Where provisioning output goes: a text stream, or the progress printer's adapter."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...



class System(ABC):
    """What the pipeline and the CLI need from the host: SystemdSystem on a server,
    LocalSystem for tests in a temp root."""

    name = "abstract"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # instances
    @abstractmethod
    def restart_instance(self, app: AppLayout, port: int) -> None:
        """(Re)start the instance on `port`."""

    @abstractmethod
    def start_instances(self, app: AppLayout, ports: list[int]) -> None:
        """(Re)start the instances on `ports`, all at once, of the release `current` points
        at; not enabled for boot yet (commit_instances does that once they serve)."""

    @abstractmethod
    def commit_instances(self, app: AppLayout, serving: list[int], retired: list[int]) -> None:
        """After a switch: the `serving` instances come back after a reboot; the `retired`
        ones no longer do, and are stopped (SIGTERM, the app's own drain time), their
        drain left to run in the background."""

    @abstractmethod
    def stop_instances(self, app: AppLayout, ports: list[int]) -> None:
        """Disable and stop the instances on `ports` (each drains: SIGTERM, then the app's
        own drain time), all at once; stopping stopped ones is fine."""

    @abstractmethod
    def journal_tail(self, app: AppLayout, port: int, since: float, lines: int = 12) -> list[str]:
        """The last `lines` lines the instance on `port` (and systemd about it) logged
        since the epoch time `since`."""

    def set_upstreams(self, app: AppLayout, ports: list[int]) -> None:
        """Point the proxy at `ports` (Caddy asks tova-upstreams; no reload)."""
        upstreams.write(self.layout.upstreams_dir, app.name, ports)

    @abstractmethod
    def stop_instance(self, app: AppLayout, port: int) -> None:
        """Stop and disable the instance on `port`; stopping a stopped one is fine."""

    @abstractmethod
    def instance_running(self, app: AppLayout, port: int) -> bool:
        """Whether the instance's process is up."""

    @abstractmethod
    def instance_info(self, app: AppLayout, port: int) -> dict[str, Any]:
        """port, state, memory_bytes, cpu_percent, uptime_seconds (None when unknown)."""

    # provisioning
    @abstractmethod
    def provision(self, script: Path, layers: list[str], out: TextSink) -> int:
        """Run provision.sh for `layers`, streaming its output; its exit status."""

    # inspection
    @abstractmethod
    def logs(self, app: str, ports: list[int], since: str | None, follow: bool) -> int:
        """Show the app's logs; an exit status."""

    @abstractmethod
    def service_state(self, service: str) -> str:
        """State of a system service (caddy, postgresql, redis-server) or "absent"."""

    @abstractmethod
    def certificate(self, domain: str) -> dict[str, Any] | None:
        """The certificate the proxy holds for `domain`, or None."""

    @abstractmethod
    def journal(self, line: str) -> None:
        """Record one line of deploy output in the system log."""

    @abstractmethod
    def reload_proxy(self) -> None:
        """Gracefully reload the reverse proxy."""

    @abstractmethod
    def databases(self, manifest: Manifest | None) -> list[dict[str, Any]]:
        """State of each engine the app uses, with the app's share of it."""

    # the build sandbox and file ownership
    @abstractmethod
    def build_owner(self, app: AppLayout) -> tuple[int, int] | None:
        """(uid, gid) of the app's build user, created when missing; None: no switch."""

    @abstractmethod
    def app_owner(self, app: AppLayout) -> tuple[int, int] | None:
        """(uid, gid) of the app's own user (owner of data/); None: no switch."""

    @abstractmethod
    def run_tool(self, run: ToolRun, out: Callable[[str], None]) -> int:
        """Run pushed-code tooling (compiler, installer) in the build sandbox, each output
        line to `out`; its exit status."""

    # removal
    @abstractmethod
    def remove_app(self, app: AppLayout, ports: list[int], manifest: Manifest | None, archive: Path) -> list[str]:
        """Take the app off the system (data archived into `archive`); the steps done."""
