"""Which `tova` is which on PATH: the Tova compiler's own `tova` and this toolkit's share a
name, so `tova build` is handed over to the compiler and the plan warns when the
compiler's comes first."""

from __future__ import annotations

import os
import sys


def find_compiler() -> str | None:
    """TOVA_COMPILER, else another `tova` on PATH that is not this toolkit."""
    if os.environ.get("TOVA_DEPLOY_HANDED_OVER"):
        return None  # the compiler handed back to us: never loop
    configured = os.environ.get("TOVA_COMPILER")
    if configured:
        return configured
    ours = {os.path.realpath(sys.argv[0])} if sys.argv and sys.argv[0] else set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "tova")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real in ours or _is_this_toolkit(real):
                continue
            return candidate
    return None


def _is_this_toolkit(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    return b"tova.cli" in head


def first_tova_on_path(path: str | None = None) -> str | None:
    """The `tova` a shell would run: the first executable of that name on PATH."""
    for directory in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep):
        candidate = os.path.join(directory or ".", "tova")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def shadowing_tova(path: str | None = None) -> str | None:
    """The first `tova` on PATH when it is not this toolkit (the compiler's, usually),
    else None."""
    first = first_tova_on_path(path)
    if first is None or _is_this_toolkit(os.path.realpath(first)):
        return None
    return first
