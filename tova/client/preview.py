"""`tova deploy <env> --plan` and `--render DIR`: local, read-only views of a deploy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tova.client.commands import cmd_plan_remote, format_plan_remote
from tova.client.on_path import shadowing_tova
from tova.errors import EXIT_OK, TovaError
from tova.manifest import Manifest
from tova.plan import plan_dict, render_plan
from tova.settings import ServerSettings


def plan_ports(manifest: Manifest, registry: str | None, settings: ServerSettings) -> list[int]:
    """Ports from a registry file when given, else the first free block from first_port."""
    if registry is None:
        return list(range(settings.first_port, settings.first_port + manifest.instances))
    from tova.server.registry import allocate, parse

    try:
        text = Path(registry).read_text()
    except OSError as exc:
        raise TovaError(f"cannot read the registry {registry}: {exc.strerror}",
                        hint="pass a registry.json copied from the server (/opt/tova/registry.json)") from exc
    data = parse(text, registry, settings.first_port)
    return allocate(data, manifest.app, manifest.instances, settings.first_port)


def run_plan(project: Path, manifest: Manifest, *, as_json: bool, registry: str | None, local_only: bool,
             health: dict[str, Any] | None = None, served: dict[str, Any] | None = None) -> int:
    settings = ServerSettings()
    ports = plan_ports(manifest, registry, settings)
    server_view: dict[str, Any] = {"contacted": False}
    if local_only:
        server_view["reason"] = "--local"
    else:
        server_view = _server_view(project, manifest)
    toolchain = server_view.get("toolchain") or {}
    # The Bun the server's settings install (the default when the plan did not ask).
    bun_version = toolchain.get("bun_version") or settings.bun_version
    if as_json:
        d = plan_dict(manifest, ports, bun_version, server_view, health)
        if served is not None:
            d["static"] = served
        print(json.dumps(d, indent=2, sort_keys=True))
        return EXIT_OK
    lines = _server_lines(server_view) + _path_lines()
    sys.stdout.write(render_plan(manifest, ports, bun_version, lines, health,
                                 tls=toolchain.get("tls_in_force") or toolchain.get("tls"), served=served,
                                 # asked, the server had neither the toolkit nor a config.toml
                                 no_settings_file=bool(server_view.get("contacted")) and not toolchain.get("settings")))
    return EXIT_OK


def _path_lines() -> list[str]:
    """Said once per plan: the `tova` a shell runs is another one (the compiler's)."""
    other = shadowing_tova()
    if other is None:
        return []
    return [f"Note: `tova` on your PATH is {other}, not tova-deploy: run `tova-deploy ...`",
            "      (same arguments as `tova deploy ...`) or put tova-deploy's bin first on PATH."]


def _server_view(project: Path, manifest: Manifest) -> dict[str, Any]:
    try:
        return cmd_plan_remote(project, manifest)
    except TovaError as err:
        return {"contacted": False, "reason": err.message}


def _server_lines(view: dict[str, Any]) -> list[str]:
    if not view.get("contacted"):
        reason = view.get("reason")
        return [f"Server not contacted ({reason}); showing the local plan only." if reason
                else "Server not contacted; showing the local plan only."]
    return format_plan_remote(view).splitlines()


def run_render(manifest: Manifest, out_dir: Path, *, registry: str | None) -> int:
    from tova.render import render_all, write_rendered

    settings = ServerSettings()
    ports = plan_ports(manifest, registry, settings)
    files = render_all(manifest, ports, settings)
    try:
        write_rendered(files, out_dir)
    except OSError as exc:
        where = exc.filename or out_dir
        raise TovaError(f"cannot write {where}: {exc.strerror}",
                        hint="--render takes a directory you can write (it is created if missing)") from exc
    for name in sorted(files):
        print(out_dir / name)
    return EXIT_OK
