"""The system layer (packages, Caddy, Bun, the compiler, the firewall) is the same for
every app on a server. Once it has run with the same inputs, a new app's first deploy
skips it: each of its steps checks before acting, but the checks alone (dpkg-query, the
version of each tool, ufw status) cost most of a second on a small server."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from tova.layout import Layout
from tova.manifest import Manifest, canonical_json
from tova.server.atomic import write_atomic
from tova.settings import PROVISIONED, ServerSettings


def system_key(manifest: Manifest, settings: ServerSettings) -> str:
    """What the system layer depends on: the manifest's system inputs, the server settings
    that are part of it (settings.PROVISIONED) and the provisioning template itself."""
    template = resources.files("tova").joinpath("templates/provision.sh.j2").read_bytes()
    inputs = {
        "system": manifest.layer_inputs()["system"],
        "settings": {k: str(getattr(settings, k)) for k, layer in PROVISIONED.items() if layer == "system"},
        "template": hashlib.sha256(template).hexdigest(),
    }
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


def provisioned(layout: Layout, key: str) -> bool:
    try:
        return bool(json.loads(layout.system_stamp.read_text()).get("key") == key)
    except (OSError, ValueError, AttributeError):
        return False


def record(layout: Layout, key: str) -> None:
    write_atomic(layout.system_stamp, json.dumps({"key": key}) + "\n")
