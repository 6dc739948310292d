"""A fingerprint of the installed toolkit's files, so that a client whose code differs
from the server's at the same version number (a development checkout) still upgrades it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def package_files(root: Path = PACKAGE_ROOT) -> list[str]:
    """The package's files as a wheel carries them, relative and sorted: bytecode and hidden
    files (tool caches, e.g. ruff's beside the pyproject.toml link in data/) left out."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        if not path.is_file() or "__pycache__" in parts or rel.endswith((".pyc", ".pyo")):
            continue
        if any(part.startswith(".") for part in parts):
            continue
        out.append(rel)
    return sorted(out)


def watcher_version() -> str:
    """The toolkit version plus a digest of the health watcher's code: it changes (and so
    the watcher unit's text, and provision.sh restarts the watcher) when an update changes
    that code. Read as files, so the pure renderer need not import the server side."""
    import tova

    digest = hashlib.sha256()
    for rel in ("server/watchdog.py", "server/health.py"):
        digest.update((PACKAGE_ROOT / rel).read_bytes())
    return f"{tova.__version__} (watcher {digest.hexdigest()[:12]})"


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """sha256 over every file of the tova package (path and bytes).
    A wheel install and the source tree it was built from give the same value."""
    digest = hashlib.sha256()
    for rel in package_files():
        digest.update(rel.encode() + b"\0" + (PACKAGE_ROOT / rel).read_bytes() + b"\0")
    return digest.hexdigest()
