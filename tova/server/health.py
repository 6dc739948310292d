"""Health checks: HTTP GET http://127.0.0.1:<port><path>, each try bounded by a timeout,
retried until a deadline. Only loopback: instances listen there, behind Caddy."""

from __future__ import annotations

import http.client
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status: int | None
    detail: str


def check_once(port: int, path: str, timeout: float) -> HealthResult:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "tova-health"})
        resp = conn.getresponse()
        resp.read(65536)
        ok = 200 <= resp.status < 300
        return HealthResult(ok, resp.status, f"HTTP {resp.status}")
    except (OSError, http.client.HTTPException) as exc:
        return HealthResult(False, None, str(exc) or type(exc).__name__)
    finally:
        conn.close()


def wait_healthy(
    port: int, path: str, timeout: float, deadline: float, interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> HealthResult:
    """Retry until healthy or `deadline` seconds have passed. `alive` lets the caller stop
    early when the process it started has already exited."""
    end = time.monotonic() + deadline
    result = HealthResult(False, None, "not checked")
    while True:
        remaining = end - time.monotonic()
        result = check_once(port, path, max(0.05, min(timeout, remaining)))
        if result.ok:
            return result
        if alive is not None and not alive():
            return HealthResult(False, result.status, f"process exited ({result.detail})")
        if time.monotonic() + interval >= end:
            return result
        time.sleep(interval)


# --- the periodic check (tova-health.service, tova.server.watchdog) -------------------
# One sleeping process checks every app, each at its own phase of its interval: no timer
# per app (each run cost CPU and journal lines) and no burst of all apps at once at boot.

RETRY_DELAY = 2.0  # a failed instance is checked again this soon; restarted if it fails again


def phase(app: str, interval: float) -> float:
    """A stable offset in [0, interval) for the app's checks, spread by its name."""
    return (zlib.crc32(app.encode()) % 1000) / 1000 * interval


def next_check(now: float, interval: float, failing: bool) -> float:
    """When an app is checked next: after RETRY_DELAY while an instance is failing, else
    one interval on. An instance that stops answering is thus restarted within
    interval + RETRY_DELAY, under two intervals."""
    return now + (min(RETRY_DELAY, interval) if failing else interval)


def restart_due(failures: int, uptime: float | None, startup_deadline: float, deploying: bool) -> bool:
    """Restart an instance after two failed checks in a row, unless it is still starting
    (the deploy waits for it) or a deploy of its app is under way (the deploy decides)."""
    if failures < 2 or deploying:
        return False
    return uptime is not None and uptime >= startup_deadline
