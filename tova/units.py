"""Sizes for people: shared by the plan and the client's screens."""

from __future__ import annotations


def format_bytes(n: int | float) -> str:
    """1024-based, whole numbers without decimals: "512 MB", "1.5 GB", "64 KB", "12 B"."""
    for unit, size in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} B"
