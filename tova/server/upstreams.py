"""Which instances serve each app, told to Caddy without reloading it.

Caddy 2.6 applies every configuration change (file reload or admin API) as a full
reload, which closes clients' idle keep-alive connections. Its dynamic upstreams do not:
each app's site asks for the SRV record `<app>.tova.internal`, at most every
REFRESH, from a tiny DNS responder on loopback (`tova-upstreams.service`) that answers
from one file per app, written here by the rollout. Pointing an app at new instances is a
file rename; Caddy sees it within REFRESH, on the next request.

The responder listens on a privileged port so no app user can stand in for it. (Caddy's
errors name the /etc/resolv.conf server, `lookup <app>.tova.internal on 10.x.x.x:53`: Go
reports the server it handed to the resolver's dialer, which Caddy's dialer ignores; every
query comes here, none leaves the host.)"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from tova.naming import APP_NAME_RE
from tova.naming import UPSTREAMS_HOST as DNS_HOST
from tova.naming import UPSTREAMS_PORT as DNS_PORT
from tova.naming import UPSTREAMS_REFRESH_MS as REFRESH_MS
from tova.naming import UPSTREAMS_ZONE as ZONE
from tova.naming import upstreams_srv as srv_name
from tova.server.atomic import write_atomic

__all__ = ["DNS_HOST", "DNS_PORT", "REFRESH_MS", "ZONE", "answer", "read", "remove", "serve", "srv_name", "write"]
# SRV targets must be host names; this one is answered here too (A 127.0.0.1), so Caddy's
# dial does not depend on how the system resolver treats "localhost.".
TARGET = f"_loopback.{ZONE}"
LOOPBACK = bytes([127, 0, 0, 1])

QTYPE_A = 1
QTYPE_SRV = 33
QTYPE_ANY = 255
QCLASS_IN = 1
RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_REFUSED = 1, 3, 5


def write(upstreams_dir: Path, app: str, ports: list[int]) -> None:
    """Record `ports` as the instances serving `app` (atomically: a reader never sees half)."""
    upstreams_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(upstreams_dir / app, "".join(f"{p}\n" for p in ports), mode=0o644)


def read(upstreams_dir: Path, app: str) -> list[int] | None:
    """The ports serving `app`, or None when the app has no file."""
    try:
        text = (upstreams_dir / app).read_text()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return [int(w) for w in text.split() if w.isdigit() and 0 < int(w) < 65536]


def remove(upstreams_dir: Path, app: str) -> None:
    (upstreams_dir / app).unlink(missing_ok=True)


# --- the DNS messages (RFC 1035, RFC 2782): pure functions --------------------------------

@dataclass(frozen=True)
class Query:
    ident: int
    flags: int
    name: str  # lower case, without the trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer


class BadQuery(ValueError):
    pass


def parse_query(data: bytes) -> Query:
    if len(data) < 12:
        raise BadQuery("short header")
    ident, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or qdcount != 1:
        raise BadQuery("not a single question")
    labels, pos = [], 12
    while True:
        if pos >= len(data):
            raise BadQuery("truncated name")
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length > 63 or pos + length > len(data):
            raise BadQuery("bad label")  # compression pointers never appear in a question
        labels.append(data[pos:pos + length].decode("ascii", "replace").lower())
        pos += length
    if pos + 4 > len(data):
        raise BadQuery("truncated question")
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return Query(ident, flags, ".".join(labels), qtype, qclass, data[12:pos + 4])


def app_of(name: str) -> str | None:
    head, _, zone = name.partition(".")
    return head if zone == ZONE and APP_NAME_RE.match(head) else None


def _encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".") if p) + b"\0"


def response(query: Query, ports: list[int] | None) -> bytes:
    """The answer to `query`: one SRV record per port (TTL 0), NXDOMAIN for an unknown app;
    for TARGET, its loopback address."""
    rcode = 0
    answers = b""
    count = 0
    if query.name == TARGET:
        if query.qclass == QCLASS_IN and query.qtype in (QTYPE_A, QTYPE_ANY):
            answers = struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, 0, 4) + LOOPBACK
            count = 1
    elif ports is None:
        rcode = RCODE_NXDOMAIN
    elif query.qclass == QCLASS_IN and query.qtype in (QTYPE_SRV, QTYPE_ANY):
        target = _encode_name(TARGET)
        for port in ports:
            rdata = struct.pack("!HHH", 0, 1, port) + target
            # 0xC00C: the name is the question's, at offset 12.
            answers += struct.pack("!HHHIH", 0xC00C, QTYPE_SRV, QCLASS_IN, 0, len(rdata)) + rdata
            count += 1
    flags = 0x8000 | 0x0400 | (query.flags & 0x0100) | rcode  # response, authoritative, RD echoed
    return struct.pack("!HHHHHH", query.ident, flags, 1, count, 0, 0) + query.question + answers


def error_response(data: bytes, rcode: int) -> bytes | None:
    if len(data) < 12:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x0100) | rcode, 0, 0, 0, 0)


def answer(data: bytes, upstreams_dir: Path) -> bytes | None:
    try:
        query = parse_query(data)
    except BadQuery:
        return error_response(data, RCODE_FORMERR)
    if query.name == TARGET:
        return response(query, [])
    app = app_of(query.name)
    if app is None:
        return error_response(data, RCODE_REFUSED)
    return response(query, read(upstreams_dir, app))


def notify_ready() -> None:
    """Tell systemd the socket is bound (Type=notify): Caddy, ordered after this service,
    then never asks before anyone answers (at boot its failed lookups had kept every app
    out for seconds, and logged a line per retried request)."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return  # not started by systemd
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(b"READY=1")


def serve(upstreams_dir: Path, host: str = DNS_HOST, port: int = DNS_PORT) -> None:
    """Answer queries forever (tova-upstreams.service)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    notify_ready()
    while True:
        data, peer = sock.recvfrom(512)
        reply = answer(data, upstreams_dir)
        if reply is not None:
            sock.sendto(reply, peer)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="tova-upstreams", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the directory of per-app upstream files")
    parser.add_argument("--listen", default=f"{DNS_HOST}:{DNS_PORT}")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    serve(args.dir, host, int(port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
