"""Choosing the system adapter, app-name checks on paths, and the health check against a
real loopback server (the adapter's commands: tests/test_host_commands.py)."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from tova.errors import TovaError
from tova.layout import Layout
from tova.server.adapters import select_system
from tova.server.health import check_once, wait_healthy
from tova.server.local_system import LocalSystem
from tova.server.systemd import SystemdSystem


def test_select_system(tmp_path):
    layout = Layout.of(tmp_path)
    assert isinstance(select_system(layout, {"TOVA_SYSTEM": "local"}), LocalSystem)
    assert isinstance(select_system(layout, {}), SystemdSystem)
    with pytest.raises(TovaError):
        select_system(layout, {"TOVA_SYSTEM": "docker"})


def test_app_names_are_checked_before_becoming_paths(tmp_path):
    for bad in ("../etc", "A", "a b", "a;b", ""):
        with pytest.raises(TovaError):
            Layout.of(tmp_path).app(bad)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_health_checks_real_http():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    t.start()
    try:
        port = srv.server_address[1]
        assert check_once(port, "/ok", 2).ok
        bad = wait_healthy(port, "/bad", 1, deadline=0.3)
        assert not bad.ok and bad.status == 500
        # Answers decide, not the deadline: three 500s in a row fail at once. The process
        # is asked about after the second and the third (not right after its start).
        answers = []
        fast = wait_healthy(port, "/bad", 1, deadline=3600, interval=0.01,
                            alive=lambda: answers.append(1) or True)
        assert not fast.ok and fast.detail == "HTTP 500 3 times in a row" and len(answers) == 2
    finally:
        srv.shutdown()
        srv.server_close()
    gone = wait_healthy(port, "/ok", 0.2, deadline=0.3)
    assert not gone.ok and gone.status is None and gone.detail.startswith("not listening after 0.3s")
    exited = wait_healthy(port, "/ok", 0.2, deadline=3600, alive=lambda: False)
    assert not exited.ok and exited.detail.startswith("process exited")



def test_a_starting_instance_is_polled_often_and_asked_about_its_process_seldom():
    """Polls of a port nobody listens on cost a refused connection; whether the process
    still runs costs a systemctl call, asked every ALIVE_EVERY seconds only."""
    from tova.server.health import ALIVE_EVERY

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a free port: every poll is refused
    asked = []
    result = wait_healthy(port, "/ok", 0.2, deadline=0.6, interval=0.01, alive=lambda: asked.append(1) or True)
    assert not result.ok and result.detail.startswith("not listening after 0.6s")
    assert 1 <= len(asked) <= 0.6 / ALIVE_EVERY + 1
