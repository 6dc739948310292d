"""Running the tools that act on pushed code (the Tova compiler, Bun's package installer):
one function, so that every such run streams its output the same way and can be confined
the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

BUN_PATH = "/usr/local/bin/bun"  # where provisioning installs Bun (the units run it)


def bun_binary() -> str | None:
    """The server's Bun; elsewhere (tests on a workstation) the one on PATH."""
    return BUN_PATH if os.access(BUN_PATH, os.X_OK) else shutil.which("bun")


def run_tool(argv: list[str], cwd: Path, passthrough: Callable[[str], None],
             env: dict[str, str] | None = None) -> int:
    """Run argv in cwd, each output line (stdout and stderr, in order) to passthrough;
    its exit status. OSError when it cannot be started."""
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    for line in proc.stdout:
        passthrough(line)
    return proc.wait()
