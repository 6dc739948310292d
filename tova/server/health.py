"""Health checks: HTTP GET http://127.0.0.1:<port><path>, each try bounded by a timeout,
retried until a deadline. Only loopback: instances listen there, behind Caddy."""

from __future__ import annotations

import http.client
import time
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
    alive: "callable[[], bool] | None" = None,
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
