"""Which System adapter this process uses: TOVA_SYSTEM=systemd (the default, a real
server) or local (tests in a temp root)."""

from __future__ import annotations

import os

from tova.errors import TovaError
from tova.layout import Layout
from tova.server.local_system import LocalSystem
from tova.server.system import System
from tova.server.systemd import SystemdSystem


def select_system(layout: Layout, environ: dict[str, str] | None = None) -> System:
    env = os.environ if environ is None else environ
    kind = env.get("TOVA_SYSTEM", "systemd")
    if kind == "local":
        return LocalSystem(layout, env.get("TOVA_LOCAL_RUNTIME"))
    if kind == "systemd":
        return SystemdSystem(layout)
    raise TovaError(f"unknown TOVA_SYSTEM {kind!r}", hint="use 'systemd' or 'local'")
