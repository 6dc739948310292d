"""The server-wide health watcher: its policy (pure functions in tova.server.health) and one
process checking real HTTP instances, with a System that records restarts."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tova.layout import AppLayout, Layout
from tova.manifest import HealthCheck, Manifest
from tova.server.health import RETRY_DELAY, next_check, phase, restart_due
from tova.server.local_system import LocalSystem
from tova.server.locks import deploy_lock
from tova.server.registry import Registry, allocate
from tova.server.watchdog import Watcher, targets
from tova.settings import ServerSettings


def test_phases_spread_apps_over_the_interval():
    phases = [phase(f"app{i}", 30) for i in range(60)]
    assert all(0 <= p < 30 for p in phases)
    assert phase("app1", 30) == phase("app1", 30)  # stable across restarts of the watcher
    # No burst: no second of the interval holds more than a few of 60 apps' checks.
    per_second = [sum(1 for p in phases if int(p) == s) for s in range(30)]
    assert max(per_second) <= 8


def test_policy():
    assert next_check(100.0, 30, failing=False) == 130.0
    assert next_check(100.0, 30, failing=True) == 100.0 + RETRY_DELAY
    # An instance that stops answering just after a check: found at the next one, confirmed
    # RETRY_DELAY later, restarted; all within two intervals.
    assert 30 + RETRY_DELAY < 2 * 30
    assert not restart_due(1, 100, 30, deploying=False)
    assert restart_due(2, 100, 30, deploying=False)
    assert not restart_due(2, 10, 30, deploying=False)  # still starting
    assert not restart_due(2, None, 30, deploying=False)
    assert not restart_due(5, 100, 30, deploying=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET answers the server's `status`; OPTIONS (the liveness check) always 204."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append("GET")  # type: ignore[attr-defined]
        status = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_OPTIONS(self):  # noqa: N802
        self.server.requests.append("OPTIONS")  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _instance(status: int) -> http.server.HTTPServer:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    srv.status = status  # type: ignore[attr-defined]
    srv.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return srv


class RecordingSystem(LocalSystem):
    """Instances are the test's HTTP servers: always active, up for `uptime` seconds."""

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout, runtime="true")
        self.restarts: list[tuple[str, int]] = []
        self.uptime = 100

    def instance_info(self, app: AppLayout, port: int) -> dict:
        return {"port": port, "state": "active", "uptime_seconds": self.uptime}

    def restart_instance(self, app: AppLayout, port: int) -> None:
        self.restarts.append((app.name, port))
        self.uptime = 0  # a restarted instance is young again


def _deploy(layout: Layout, app: str, ports: list[int], path: str = "/healthz") -> None:
    with Registry(layout).transaction() as data:
        data["apps"][app] = {"ports": ports, "instances": len(ports), "version": "v1"}
    release = layout.app(app).releases / "v1"
    release.mkdir(parents=True)
    m = Manifest(project=app, app=app, env="prod", server="s", domain=f"{app}.example.com",
                 health=HealthCheck(path=path, interval=30))
    (release / ".tova-manifest.json").write_text(json.dumps(m.to_dict()))
    layout.app(app).current.symlink_to("releases/v1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    layout = Layout.of(tmp_path)
    good, bad = _instance(200), _instance(500)
    _deploy(layout, "good", [good.server_port])
    _deploy(layout, "bad", [bad.server_port, good.server_port])
    system = RecordingSystem(layout)
    logged: list[str] = []
    clock = Clock()
    watcher = Watcher(layout, system, ServerSettings(root=str(tmp_path)), log=logged.append, clock=clock)
    yield layout, watcher, system, logged, clock, good, bad
    good.shutdown()
    bad.shutdown()


def _run_until(watcher: Watcher, clock: Clock, end: float) -> None:
    while clock.now < end:
        clock.now += watcher.tick()
        clock.now += 0.001


def test_failing_instance_is_restarted_within_two_intervals_and_only_it(world):
    layout, watcher, system, logged, clock, good, bad = world
    assert [t.app for t in targets(layout, watcher.registry)] == ["bad", "good"]
    _run_until(watcher, clock, 1000 + 2 * 30)
    assert system.restarts == [("bad", bad.server_port)]  # not its healthy second instance
    assert logged == [f"tova-bad@{bad.server_port}.service: health check /healthz failed twice; restarting"]


def test_all_well_means_no_restart_no_line_and_one_check_per_interval(world):
    layout, watcher, system, logged, clock, good, bad = world
    bad.status = 200  # type: ignore[attr-defined]
    checks = []
    real = watcher.check
    watcher.check = lambda t: checks.append(t.app) or real(t)  # type: ignore[method-assign]
    _run_until(watcher, clock, 1000 + 10 * 30)
    assert system.restarts == [] and logged == []
    assert checks.count("good") in (10, 11) and checks.count("bad") in (10, 11)


def test_between_hourly_full_checks_only_liveness_is_asked(world):
    """The full check is a GET the app logs (a journal line each time): once an hour per
    instance; every interval in between an OPTIONS, which compiled apps do not log."""
    layout, watcher, system, logged, clock, good, bad = world
    bad.status = 200  # type: ignore[attr-defined]
    _run_until(watcher, clock, 1000 + 2 * 3600)
    gets, options = good.requests.count("GET"), good.requests.count("OPTIONS")  # type: ignore[attr-defined]
    # good's port serves one instance of each app: 2 apps x (2 or 3 full checks in 2 h).
    assert 4 <= gets <= 6 and options >= 2 * (2 * 120 - 6)
    assert system.restarts == [] and logged == []


def test_an_instance_that_stops_answering_is_found_by_the_liveness_check(world):
    layout, watcher, system, logged, clock, good, bad = world
    bad.status = 200  # type: ignore[attr-defined]
    _run_until(watcher, clock, 1000 + 300)  # past the first full checks
    assert system.restarts == []
    bad.shutdown()  # no answer at all from now on
    bad.server_close()
    stopped = clock.now
    _run_until(watcher, clock, stopped + 2 * 30)
    assert system.restarts == [("bad", bad.server_port)]


def test_starting_or_deploying_instances_are_left_alone(world):
    layout, watcher, system, logged, clock, good, bad = world
    system.uptime = 5  # younger than startup_deadline
    _run_until(watcher, clock, 1000 + 2 * 30)
    assert system.restarts == []
    system.uptime = 100
    with deploy_lock(layout.app("bad"), 1):
        _run_until(watcher, clock, clock.now + 2 * 30)
        assert system.restarts == []
    _run_until(watcher, clock, clock.now + 2 * 30)
    assert system.restarts == [("bad", bad.server_port)]


def test_removed_or_undeployed_apps_are_not_checked(world, tmp_path):
    layout, watcher, system, logged, clock, good, bad = world
    with Registry(layout).transaction() as data:
        del data["apps"]["bad"]
        allocate(data, "new", 1, 3000)  # registered, never deployed: no current release
    assert [t.app for t in targets(layout, watcher.registry)] == ["good"]
    _run_until(watcher, clock, 1000 + 2 * 30)
    assert system.restarts == []
