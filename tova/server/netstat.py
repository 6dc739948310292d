"""Ports other software on this server listens on, read from /proc/net/tcp{,6} (no
subprocess, no extra package): the port allocator must not hand one of them to an app."""

from __future__ import annotations

from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in the st column


def parse_listening(text: str) -> set[int]:
    """Local ports in LISTEN state from the text of /proc/net/tcp or /proc/net/tcp6."""
    ports: set[int] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN:
            continue
        _, _, port_hex = fields[1].rpartition(":")
        try:
            ports.add(int(port_hex, 16))
        except ValueError:
            continue
    return ports


def listening_ports(proc: Path = Path("/proc")) -> set[int]:
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            ports |= parse_listening((proc / "net" / name).read_text())
        except OSError:
            continue  # no IPv6, or no /proc: the reserved list still applies
    return ports
