"""Health checks: HTTP GET http://127.0.0.1:<port><path>, each try bounded by a timeout,
retried until a deadline. Only loopback: instances listen there, behind Caddy.

Two kinds of check (the deploy block's `HealthCheck`):
  strict    GET <health path> answers 2xx. Always used when `health:` is written, and
            when a GET route of the app answers the default path.
  fallback  no route answers the health path and `health:` was not written: the instance
            accepts HTTP on its port and `GET /` answers without a 5xx (a 404 or a
            redirect still proves the app is up).
The deploy, the periodic check and the plan all decide through the small pure functions
below (`is_healthy`) and in tova.manifest (`probe_path`, `describe`)."""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from tova.manifest import FALLBACK_PATH, HealthCheck, probe_path


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status: int | None
    detail: str


def is_healthy(status: int | None, fallback: bool) -> bool:
    """An HTTP status (None: no HTTP answer at all) judged by the kind of check."""
    if status is None:
        return False
    return 100 <= status < 500 if fallback else 200 <= status < 300


# A plain socket rather than http.client: only the status is needed, and http.client's
# imports (email parsing) cost each deploy's hook tens of milliseconds.
MAX_HEAD = 65536  # bytes of status line and headers read at most


def check_once(port: int, path: str, timeout: float, fallback: bool = False, method: str = "GET") -> HealthResult:
    if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
        return HealthResult(False, None, f"not a path for a request line: {path!r}")  # validated earlier too
    request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: tova-health\r\n"
               "Accept-Encoding: identity\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(request)
            head = _read_head(conn)
    except OSError as exc:
        return HealthResult(False, None, str(exc) or type(exc).__name__)
    status = parse_status(head)
    if status is None:
        return HealthResult(False, None, "not an HTTP answer")
    return HealthResult(is_healthy(status, fallback), status, f"HTTP {status}")


def _read_head(conn: socket.socket) -> bytes:
    """The answer up to the end of its headers (or of the connection, or MAX_HEAD bytes)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
        chunk = conn.recv(MAX_HEAD - len(head))
        if not chunk:
            break
        head += chunk
    return head


def parse_status(head: bytes) -> int | None:
    """The status of an answer's first line (`HTTP/1.1 200 OK`), None if it is not one."""
    parts = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or len(parts[1]) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


def check(port: int, health: HealthCheck) -> HealthResult:
    """One try of the deploy block's check."""
    return check_once(port, probe_path(health), health.timeout, health.fallback)


BAD_ANSWERS = 3  # answers in a row that fail the check: the release is bad, stop waiting
BAD_ANSWER_PAUSE = 0.5  # seconds between checks after a bad answer
# Whether a starting process still runs is asked this often, not after every poll: the
# answer costs a process (systemctl), a poll a refused connection on loopback.
ALIVE_EVERY = 0.25


def wait_healthy(
    port: int, path: str, timeout: float, deadline: float, interval: float = 0.1,
    alive: Callable[[], bool] | None = None, fallback: bool = False,
    bad_answers: int = BAD_ANSWERS,
) -> HealthResult:
    """Retry until healthy. Decides fast: BAD_ANSWERS failing answers in a row (an HTTP
    status outside 2xx, or a request that connected but timed out) or a process that
    exited fail at once; `deadline` seconds bound only the wait for an instance that is
    still starting to listen. `alive` tells whether the process is still up."""
    end = time.monotonic() + deadline
    result = HealthResult(False, None, "not checked")
    bad = 0
    # First asked ALIVE_EVERY after the start: a process just started runs, and the answer
    # (a systemctl process) would hold up the polls while the instance boots.
    alive_due = time.monotonic() + ALIVE_EVERY
    while True:
        remaining = end - time.monotonic()
        result = check_once(port, path, max(0.05, min(timeout, remaining)) if bad == 0 else timeout, fallback)
        if result.ok:
            return result
        if alive is not None and time.monotonic() >= alive_due:
            if not alive():
                return HealthResult(False, result.status, f"process exited ({result.detail})")
            alive_due = time.monotonic() + ALIVE_EVERY
        bad = bad + 1 if answered(result) else 0
        if bad >= bad_answers:
            return HealthResult(False, result.status, f"{result.detail} {bad} times in a row")
        if bad == 0 and time.monotonic() + interval >= end:
            return HealthResult(False, result.status, f"not listening after {deadline:g}s ({result.detail})")
        # A listening instance that answers badly gets a moment to settle (a 503 while it
        # warms up): the bad answers in a row span about a second.
        time.sleep(max(interval, BAD_ANSWER_PAUSE) if bad else interval)


def answered(result: HealthResult) -> bool:
    """The instance is listening: it answered (any status) or accepted and then hung."""
    return result.status is not None or "timed out" in result.detail


# --- the periodic check (tova-health.service, tova.server.watchdog) -------------------
# One sleeping process checks every app, each at its own phase of its interval: no timer
# per app (each run cost CPU and journal lines) and no burst of all apps at once at boot.

RETRY_DELAY = 2.0  # a failed instance is checked again this soon; restarted if it fails again
# Between full checks (the deploy block's check, a GET the app logs like any request: one
# journal line per check) the watcher only asks whether the instance answers at all.
FULL_CHECK_EVERY = 3600.0


LIVENESS_TIMEOUT = 2.0  # a live instance answers OPTIONS in milliseconds


def answers(port: int, timeout: float) -> HealthResult:
    """Liveness: the instance answers `OPTIONS /` with any status below 500. A compiled
    Tova server answers OPTIONS (a CORS preflight) before it logs a request, so this
    check leaves no line in the app's log; a hung or dead instance gives no answer."""
    return check_once(port, FALLBACK_PATH, min(timeout, LIVENESS_TIMEOUT), fallback=True, method="OPTIONS")


def full_check_due(last_full: float | None, now: float, failures: int) -> bool:
    """The full check for an instance's first check, once every FULL_CHECK_EVERY, and to
    confirm a failure before a restart."""
    return failures > 0 or last_full is None or now - last_full >= FULL_CHECK_EVERY


def phase(app: str, interval: float) -> float:
    """A stable offset in [0, interval) for the app's checks, spread by its name."""
    return (zlib.crc32(app.encode()) % 1000) / 1000 * interval


def next_check(now: float, interval: float, failing: bool) -> float:
    """When an app is checked next (`now`: when this check began): RETRY_DELAY later while
    an instance is failing, else one interval on. An instance that stops answering is
    thus restarted within interval + max(RETRY_DELAY, LIVENESS_TIMEOUT) + health_timeout:
    under two intervals whenever health_timeout + 2 s < health_interval (30 and 5 s by
    default)."""
    return now + (min(RETRY_DELAY, interval) if failing else interval)


def restart_due(failures: int, uptime: float | None, startup_deadline: float, deploying: bool) -> bool:
    """Restart an instance after two failed checks in a row, unless it is still starting
    (the deploy waits for it) or a deploy of its app is under way (the deploy decides)."""
    if failures < 2 or deploying:
        return False
    return uptime is not None and uptime >= startup_deadline


def wait_for(port: int, health: HealthCheck, deadline: float,
             alive: Callable[[], bool] | None = None, interval: float = 0.1) -> HealthResult:
    """wait_healthy for the deploy block's check."""
    return wait_healthy(port, probe_path(health), health.timeout, deadline, interval=interval, alive=alive,
                        fallback=health.fallback)
