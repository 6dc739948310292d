"""Rolling an app onto a release: restart its instances one at a time, each healthy before
the next, and switch `current` to an existing release. Used by the pipeline's restart step,
by rollbacks (automatic and manual) and by `env set` / `env unset`."""

from __future__ import annotations

from functools import partial

from tova.layout import AppLayout
from tova.manifest import Manifest
from tova.server.atomic import flip_symlink
from tova.server.health import HealthResult, wait_for
from tova.server.registry import Registry
from tova.server.system import System
from tova.server.ui import Out
from tova.settings import ServerSettings

Failure = tuple[int, HealthResult]  # the port that did not come up healthy, and why


def restart_all(system: System, app: AppLayout, ports: list[int], manifest: Manifest,
                settings: ServerSettings) -> Failure | None:
    """Restart one instance at a time, each healthy before the next. The first failure."""
    for port in ports:
        system.restart_instance(app, port)
        result = wait_for(port, manifest.health, settings.startup_deadline,
                          alive=partial(system.instance_running, app, port))
        if not result.ok:
            return port, result
    # Caddy's active health checks may have seen an instance down while it restarted
    # (or before a first start) and would keep it out for a whole health_interval:
    # a reload starts its checks afresh, on instances now known to be healthy.
    system.reload_proxy()
    return None


def switch_to(version: str, was: str | None, system: System, app: AppLayout, ports: list[int],
              manifest: Manifest, settings: ServerSettings, registry: Registry,
              out: Out) -> Failure | None:
    """Point `current` at an existing release, restart onto it and record it as the app's
    version: the shared part of an automatic and a manual rollback. The first failure."""
    flip_symlink(app.current, app.current_target(version))
    out.sub(f"current → {app.current_target(version)} (was {was or 'none'})", True)
    failure = restart_all(system, app, ports, manifest, settings)
    out.sub("Services restarted", True)
    out.sub("Health check " + ("passed" if failure is None else "failed"), failure is None)
    with registry.transaction() as data:
        if app.name in data["apps"]:
            data["apps"][app.name]["version"] = version
    return failure
