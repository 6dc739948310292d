"""Memory and CPU of one process from /proc: the fallback for status where systemd's
cgroup accounting gives nothing (containers, accounting turned off)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_bytes(status_text: str) -> int | None:
    """VmRSS from /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def cpu_seconds(stat_text: str, ticks_per_second: int) -> float | None:
    """utime + stime from /proc/<pid>/stat (fields 14 and 15; the name may hold spaces)."""
    rest = stat_text.rpartition(")")[2].split()
    try:
        return (int(rest[11]) + int(rest[12])) / ticks_per_second
    except (IndexError, ValueError):
        return None


def process_usage(pid: int, proc: Path = Path("/proc")) -> tuple[int | None, float | None]:
    """(resident memory in bytes, CPU seconds used) of a live process, or Nones."""
    try:
        status = (proc / str(pid) / "status").read_text()
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None, None
    return rss_bytes(status), cpu_seconds(stat, os.sysconf("SC_CLK_TCK"))
