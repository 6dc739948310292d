"""tova-upstreams: the SRV answers Caddy turns into the instances it proxies to."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from tova.server import upstreams


def query(name: str, qtype: int = upstreams.QTYPE_SRV, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def decode(reply: bytes) -> tuple[int, int, list[tuple[int, int, bytes]]]:
    """(id, rcode, [(type, ttl, rdata)]) of a reply to one question."""
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    pos = 12
    for _ in range(qd):
        while reply[pos]:
            pos += reply[pos] + 1
        pos += 5
    records = []
    for _ in range(an):
        assert reply[pos:pos + 2] == b"\xc0\x0c"
        rtype, _cls, ttl, length = struct.unpack("!HHIH", reply[pos + 2:pos + 12])
        records.append((rtype, ttl, reply[pos + 12:pos + 12 + length]))
        pos += 12 + length
    assert pos == len(reply)
    return ident, flags & 0xF, records


def test_srv_answer_lists_the_serving_ports(tmp_path):
    upstreams.write(tmp_path, "shop", [3004, 3005])
    ident, rcode, records = decode(upstreams.answer(query("shop.tova.internal"), tmp_path))
    assert (ident, rcode) == (0x1234, 0)
    ports = [struct.unpack("!HHH", rdata[:6])[2] for _t, _ttl, rdata in records]
    assert ports == [3004, 3005] and {(t, ttl) for t, ttl, _ in records} == {(33, 0)}
    target = records[0][2][6:]
    assert target == b"\x09_loopback\x04tova\x08internal\x00"
    # The target resolves to loopback through the same responder.
    _, rcode, records = decode(upstreams.answer(query("_loopback.tova.internal", upstreams.QTYPE_A), tmp_path))
    assert rcode == 0 and records == [(1, 0, bytes([127, 0, 0, 1]))]
    # Case does not matter in DNS.
    assert decode(upstreams.answer(query("SHOP.Tova.Internal"), tmp_path))[2] == decode(
        upstreams.answer(query("shop.tova.internal"), tmp_path))[2]


def test_unknown_foreign_and_malformed_queries(tmp_path):
    assert decode(upstreams.answer(query("nope.tova.internal"), tmp_path))[1] == upstreams.RCODE_NXDOMAIN
    for name in ("shop.example.com", "../etc.tova.internal", "a.b.tova.internal"):
        assert decode(upstreams.answer(query(name), tmp_path))[1] == upstreams.RCODE_REFUSED, name
    assert decode(upstreams.answer(query("shop.tova.internal")[:20], tmp_path))[1] == upstreams.RCODE_FORMERR
    assert upstreams.answer(b"\x00", tmp_path) is None


def test_write_is_whole_and_read_ignores_junk(tmp_path):
    upstreams.write(tmp_path, "shop", [3000])
    assert upstreams.read(tmp_path, "shop") == [3000]
    (tmp_path / "shop").write_text("3001\nx\n70000\n3002\n")
    assert upstreams.read(tmp_path, "shop") == [3001, 3002]
    upstreams.remove(tmp_path, "shop")
    assert upstreams.read(tmp_path, "shop") is None


def _serve_until_ready(tmp_path, monkeypatch) -> int:
    """Start the responder on a free loopback port; return the port once it has told
    systemd (a socket of ours) that it is bound: a query sent before would be lost."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        threading.Thread(target=upstreams.serve, args=(tmp_path, "127.0.0.1", port), daemon=True).start()
        assert notify.recv(64) == b"READY=1"
    return port


def test_served_over_udp(tmp_path, monkeypatch):
    upstreams.write(tmp_path, "shop", [3007])
    port = _serve_until_ready(tmp_path, monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(query("shop.tova.internal"), ("127.0.0.1", port))
        reply = client.recv(512)
        ports = [struct.unpack("!HHH", r[:6])[2] for _t, _ttl, r in decode(reply)[2]]
        assert ports == [3007]
        upstreams.write(tmp_path, "shop", [3008, 3009])  # a switch is seen by the next query
        client.sendto(query("shop.tova.internal"), ("127.0.0.1", port))
        ports = [struct.unpack("!HHH", r[:6])[2] for _t, _ttl, r in decode(client.recv(512))[2]]
        assert ports == [3008, 3009]


def test_tells_systemd_it_is_ready_once_bound(tmp_path, monkeypatch):
    """Type=notify: Caddy (ordered after it) must never ask before the socket is bound; at
    boot it did, and every app stayed out until the responder came up seconds later."""
    port = _serve_until_ready(tmp_path, monkeypatch)
    # Bound by then: the port is taken, and a query is answered.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        with pytest.raises(OSError):  # EADDRINUSE
            other.bind(("127.0.0.1", port))
        other.settimeout(2)
        other.sendto(query("shop.tova.internal"), ("127.0.0.1", port))
        assert decode(other.recv(512))[1] == upstreams.RCODE_NXDOMAIN  # no such app here

