"""Progress lines in the design's style: a heading, `→ step ... ✓` lines, a result line.
Plain text (no colour codes), so it reads the same in a terminal, a log and a test."""

from __future__ import annotations

import sys

WIDTH = 56
OK, FAIL, WARN = "✓", "✗", "!"


def heading(text: str) -> str:
    return f"  {text}"


def step(label: str, mark: str = OK) -> str:
    return f"    → {label:<{WIDTH}} {mark}".rstrip()


def note(label: str) -> str:
    return f"    → {label}"


def say(*lines: str) -> None:
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
