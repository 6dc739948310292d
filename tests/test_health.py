"""Issue 15 point 1: which route answers the health path, the located plan warning when
none does, the fallback check (instance answers HTTP, `GET /` without a 5xx) and an
explicit `health:` always checked strictly."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tova.infer import health_route, route_matches
from tova.lang.reader import parse_source
from tova.manifest import HealthCheck
from tova.server import health

REPO = Path(__file__).resolve().parent.parent

NO_HEALTH_ROUTE = """server {
  fn home() { text("hi") }
  route GET "/" => home
}

deploy "prod" {
  server: "root@203.0.113.10"
  domain: "nh.example.com"
}
"""

EXPLICIT = NO_HEALTH_ROUTE + """
deploy "strict" {
  server: "root@203.0.113.10"
  domain: "strict.example.com"
  health: "/ready"
}
"""

WITH_ROUTE = """server {
  fn home() { text("hi") }
  fn healthz() { text("ok") }
  route GET "/" => home
  routes "/api" {
    route GET "/healthz" => healthz
  }
}

deploy "prod" {
  server: "root@203.0.113.10"
  domain: "r.example.com"
  health: "/api/healthz"
}
"""


@pytest.mark.parametrize("pattern,path,ok", [
    ("/healthz", "/healthz", True),
    ("/healthz", "/healthz?x=1", True),
    ("/healthz", "/health", False),
    ("/users/:id", "/users/7", True),
    ("/users/:id", "/users", False),
    ("/files/*", "/files/a/b", True),
    ("/", "/", True),
    ("/", "/healthz", False),
])
def test_route_matches(pattern, path, ok):
    assert route_matches(pattern, path) is ok


def test_reader_finds_routes_in_groups():
    parsed = parse_source(WITH_ROUTE, "app.tova")
    routes = parsed.servers[0].routes
    assert [(r.method, r.path, r.loc.line) for r in routes] == [("GET", "/", 4), ("GET", "/api/healthz", 6)]


def _plan(project: Path, env: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tova.cli", "deploy", env, "--plan", "--local", *extra],
                          cwd=project, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1"))


def _project(tmp_path: Path, source: str) -> Path:
    (tmp_path / "app.tova").write_text(source)
    return tmp_path


def test_plan_warns_at_the_deploy_block_and_names_the_fallback(tmp_path):
    project = _project(tmp_path, NO_HEALTH_ROUTE)
    r = _plan(project, "prod")
    assert r.returncode == 0, r.stderr
    assert "Health:    fallback check every 30s" in r.stdout
    assert "answer GET / without a 5xx" in r.stdout
    # located at the deploy block (line 6, column 1), both remedies named
    assert 'app.tova:6:1: warning: no route answers GET /healthz' in r.stdout
    assert 'hint: add a route: route GET "/healthz" => healthz' in r.stdout
    assert 'set health: to a GET route the app has (e.g. health: "/")' in r.stdout
    d = json.loads(_plan(project, "prod", "--json").stdout)
    assert d["health"]["fallback"] is True
    assert d["health_check"]["check"] == "fallback" and d["health_check"]["warning"].startswith("app.tova:6:1:")


def test_explicit_health_is_strict_and_warned_at_its_field(tmp_path):
    project = _project(tmp_path, EXPLICIT)
    r = _plan(project, "strict")
    assert r.returncode == 0, r.stderr
    assert "Health:    GET /ready every 30s" in r.stdout and "fallback" not in r.stdout
    assert "app.tova:14:11: warning: no route answers GET /ready; an explicit health: is checked strictly" in r.stdout
    d = json.loads(_plan(project, "strict", "--json").stdout)
    assert d["health"]["fallback"] is False and d["health_check"]["check"] == "strict"


def test_plan_names_the_route_that_answers(tmp_path):
    project = _project(tmp_path, WITH_ROUTE)
    r = _plan(project, "prod")
    assert 'answered by route GET "/api/healthz" at app.tova:6:5' in r.stdout
    assert "warning" not in r.stdout


def test_manifest_health_kind(tmp_path):
    from tova.loader import load_manifest

    assert load_manifest(_project(tmp_path, NO_HEALTH_ROUTE), "prod").health.fallback is True
    (tmp_path / "app.tova").write_text(EXPLICIT)
    assert load_manifest(tmp_path, "strict").health.fallback is False  # written: strict
    (tmp_path / "app.tova").write_text(WITH_ROUTE)
    assert load_manifest(tmp_path, "prod").health.fallback is False


def test_health_route_needs_a_get():
    parsed = parse_source('server {\n  route POST "/healthz" => h\n}\n', "app.tova")
    from tova.lang.program import Program

    program = Program(project_name="x", root=".", source_dir=".", servers=parsed.servers)
    assert health_route(program, "/healthz") is None


@pytest.mark.parametrize("status,fallback,ok", [
    (200, False, True), (204, False, True), (301, False, False), (404, False, False), (500, False, False),
    (200, True, True), (302, True, True), (404, True, True), (500, True, False), (503, True, False),
    (None, True, False), (None, False, False),
])
def test_is_healthy(status, fallback, ok):
    assert health.is_healthy(status, fallback) is ok


class _Handler(http.server.BaseHTTPRequestHandler):
    statuses: dict[str, int] = {}

    def do_GET(self):  # noqa: N802
        code = self.statuses.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_OPTIONS(self):  # noqa: N802 (a compiled app answers a preflight with 204)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def app_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_fallback_check_against_a_real_http_server(app_server, monkeypatch):
    monkeypatch.setattr(health, "BAD_ANSWER_PAUSE", 0.01)  # what is decided, not how slowly
    port = app_server.server_address[1]
    fallback = HealthCheck("/healthz", 30, 2, fallback=True)
    strict = HealthCheck("/healthz", 30, 2, fallback=False)
    _Handler.statuses = {"/": 200}
    assert health.check(port, fallback).ok  # /healthz would be a 404: not asked
    assert not health.check(port, strict).ok
    _Handler.statuses = {}  # GET / is a 404: the app is up all the same
    assert health.check(port, fallback).ok
    _Handler.statuses = {"/": 500, "/healthz": 200}
    assert not health.check(port, fallback).ok
    assert health.check(port, strict).ok
    _Handler.statuses = {"/healthz": 500}
    assert not health.wait_for(port, strict, 0.3).ok


@pytest.mark.parametrize("head,status", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200), (b"HTTP/1.0 503 Busy\r\n\r\n", 503),
    (b"HTTP/1.1 204\r\n\r\n", 204), (b"", None), (b"SSH-2.0-OpenSSH\r\n", None),
    (b"HTTP/1.1 2000 OK\r\n", None), (b"HTTP/1.1 OK\r\n", None), (b"\xff\xfe", None),
])
def test_parse_status(head, status):
    assert health.parse_status(head) == status


def _raw_server(answer: bytes, hold: float = 0.0) -> tuple[socket.socket, threading.Thread]:
    """One connection, answered with `answer` (after reading the request), then held open."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            for i in range(0, len(answer), 7):  # in small pieces: headers split across reads
                conn.sendall(answer[i:i + 7])
            time.sleep(hold)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


@pytest.mark.parametrize("answer,ok,status,detail", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True, 200, "HTTP 200"),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", False, 500, "HTTP 500"),
    (b"garbage\r\n\r\n", False, None, "not an HTTP answer"),
    (b"", False, None, "not an HTTP answer"),
])
def test_check_once_reads_the_status(answer, ok, status, detail):
    srv, t = _raw_server(answer)
    with srv:
        result = health.check_once(srv.getsockname()[1], "/healthz", 2.0)
        t.join(2)
    assert (result.ok, result.status, result.detail) == (ok, status, detail)


def test_check_once_counts_a_hung_answer_as_answered():
    srv, t = _raw_server(b"HTTP/1.1 200", hold=0.5)  # an incomplete status line, then silence
    with srv:
        result = health.check_once(srv.getsockname()[1], "/", 0.2)
        t.join(2)
    assert not result.ok and health.answered(result)


def test_check_once_refuses_a_path_that_would_break_the_request_line():
    assert "not a path" in health.check_once(1, "/a b\r\nX: y", 1.0).detail


def test_fallback_check_fails_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not health.check(port, HealthCheck(fallback=True)).ok


def test_rendered_checks_follow_the_kind():
    from tova.manifest import Manifest
    from tova.render import render_all
    from tova.settings import ServerSettings

    base = dict(env="prod", app="a", project="a", server="root@h", domain="a.example.com")
    strict = render_all(Manifest(**base, health=HealthCheck("/healthz")), [3000], ServerSettings())
    loose = render_all(Manifest(**base, health=HealthCheck("/healthz", fallback=True)), [3000], ServerSettings())
    caddy_strict = next(v for k, v in strict.items() if k.endswith("a.caddy"))
    caddy_loose = next(v for k, v in loose.items() if k.endswith("a.caddy"))
    # Caddy runs no active checks of either kind (the deploy checks new instances before
    # Caddy sees them; the watcher restarts failing ones): its site is the same.
    assert "health_uri" not in caddy_strict and "health_uri" not in caddy_loose


def test_the_watcher_uses_the_same_check(app_server):
    """The periodic watcher (tova.server.watchdog) judges an instance like the deploy did."""
    from tova.server.watchdog import Target, Watcher

    port = app_server.server_address[1]
    _Handler.statuses = {"/": 404}
    restarts = []

    class _System:
        def instance_info(self, app, p):
            return {"state": "active", "uptime_seconds": 999}

        def restart_instance(self, app, p):
            restarts.append(p)

    from tova.layout import Layout
    from tova.settings import ServerSettings

    w = Watcher(Layout.of("/nonexistent-root"), _System(), ServerSettings(), log=lambda line: None)
    loose = Target("a", (port,), HealthCheck("/healthz", fallback=True))
    strict = Target("a", (port,), HealthCheck("/healthz"))
    assert w.check(loose) is False and w.check(loose) is False and restarts == []
    # An instance's first check is the full one, and a failure is confirmed by another.
    w = Watcher(Layout.of("/nonexistent-root"), _System(), ServerSettings(), log=lambda line: None)
    w.check(strict)
    w.check(strict)
    assert restarts == [port]


NO_ROUTE_APP = """server {
  fn home() { text("no health route") }
  fn status() { respond(500, "down") }
  route GET "/" => home
  route GET "/status" => status
}

deploy "prod" {
  server: "root@example.com"
  domain: "myapp.example.com"
  instances: 2
%s}
"""


def test_pipeline_deploys_an_app_without_health_route_then_rolls_back_a_strict_500(site):
    src = site.work / "src"
    src.mkdir(exist_ok=True)
    (src / "app.tova").write_text(NO_ROUTE_APP % "")
    site.commit("no health route")
    out = site.push().stderr
    assert "Live at https://myapp.example.com (v1)" in out, out
    assert "Fallback check (no route answers GET /healthz)" in out
    assert all(site.get(p) == (200, "no health route") for p in site.ports())
    assert all(site.get(p, "/healthz")[0] == 404 for p in site.ports())  # there really is none
    # An explicit health: is strict: its 500 rolls the release back.
    (src / "app.tova").write_text(NO_ROUTE_APP % '  health: "/status"\n')
    site.commit("explicit health")
    out = site.push().stderr
    assert "Health check /status..." in out and "FAILED" in out, out
    assert "Deploy failed. Rolled back to v1." in out
    assert site.current() == "v1"
    # Caddy and the units were provisioned for v1 again (its fallback check, no /status)
    assert "Provisioned proxy, services for that release" in out, out
    assert "health_uri" not in site.app.provision_script.read_text()  # v1's fallback: no active check
    from tova.server.local_system import LocalSystem

    assert LocalSystem(site.layout).provision_runs()[-1]["layers"] == ["proxy", "services"]
