"""Run ON a test server (its /usr/bin/python3, stdlib only) by the reboot e2e test and
bench_many_apps.py: for every app in /opt/tova/registry.json, when the first of its
instances began listening (a TCP connect to one of its ports in /opt/tova/upstreams
succeeds) and when Caddy first answered for its domain (GET / on 127.0.0.1:443 with the
domain as SNI and Host; Caddy's own 502, 503 and 504 are not the app's answer).

    python3 answer_probe.py OUT [--restart-caddy] [--seconds 60]

Writes OUT (JSON, epoch seconds) once every app answered or the time is up:
{"started": t, "restarted": t or null, "apps": {app: {"listening": t, "answered": t}}}.
As a boot unit it starts before the apps and Caddy; with --restart-caddy it restarts Caddy
itself (the instances listen throughout), asking from the moment the old one stopped."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time

ROOT = "/opt/tova"
# What Caddy answers itself when it reached no instance; anything else is the app's.
CADDY_FAILED = (502, 503, 504)


def ports(app: str) -> list[int]:
    try:
        with open(f"{ROOT}/upstreams/{app}") as f:
            return [int(w) for w in f.read().split() if w.isdigit()]
    except OSError:
        return []


def listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Conn(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", 443), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def answered(domain: str, context: ssl.SSLContext, deadline: float) -> float | None:
    while time.time() < deadline:
        conn = Conn(domain, 443, context=context, timeout=15)
        try:
            conn.request("GET", "/")
            if conn.getresponse().status not in CADDY_FAILED:
                return time.time()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.02)
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--restart-caddy", action="store_true")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    started = time.time()
    deadline = started + args.seconds
    with open(f"{ROOT}/registry.json") as f:
        domains = {app: entry["domain"] for app, entry in json.load(f)["apps"].items()}
    restarted = None
    if args.restart_caddy:
        # A restart is a stop and a start: asking from the stop on, no answer can come
        # from the Caddy that was running.
        restarted = time.time()
        subprocess.run(["systemctl", "stop", "caddy"], check=True)
    result: dict[str, dict[str, float | None]] = {app: {"listening": None, "answered": None} for app in domains}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # timing only: which certificate is not the question

    def ask(app: str) -> None:
        result[app]["answered"] = answered(domains[app], context, deadline)

    threads = [threading.Thread(target=ask, args=(app,), daemon=True) for app in domains]
    for t in threads:
        t.start()
    if args.restart_caddy:
        subprocess.run(["systemctl", "start", "--no-block", "caddy"], check=True)
    waiting = set(domains)
    while waiting and time.time() < deadline:
        for app in sorted(waiting):
            if any(listens(p) for p in ports(app)):
                result[app]["listening"] = time.time()
                waiting.discard(app)
        time.sleep(0.02)
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"started": started, "restarted": restarted, "apps": result}, f)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
