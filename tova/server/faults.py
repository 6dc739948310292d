"""Fault injection for the crash-safety tests: TOVA_FAULT_INJECT=<point> makes the process
SIGKILL itself when it reaches that point: a pipeline step's name, or one of the points
inside a rollout where a kill leaves the most behind (tova.server.rollout):
"instances-started" (new instances up, not recorded), "upstreams-switched" (new ones
serving, old ones still running) and "current-flipped" (a rollback's `current` moved, the
server still provisioned for the release before it). Never set on a real server."""

from __future__ import annotations

import os
import signal


def fault_point(point: str) -> None:
    if os.environ.get("TOVA_FAULT_INJECT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
