"""A fingerprint of the installed toolkit's files, so that a client whose code differs
from the server's at the same version number (a development checkout) still upgrades it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """sha256 over every file of the tova package (path and bytes), bytecode excluded.
    A wheel install and the source tree it was built from give the same value."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel.split("/") or rel.endswith((".pyc", ".pyo")):
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
