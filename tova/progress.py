"""Progress lines, the one printer of both sides. On the server (hook, `tova-release`),
`Out` streams the design's "Push Flow" lines: `[tova]` prefix, ✓/✗ aligned in one column,
colour only on a terminal and never with NO_COLOR. On the client, `heading`/`step`/`note`
build the screens' plain lines and `say` prints them through the same `Out`."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

_ANSI = re.compile(r"\033\[[0-9;]*m")

OK, FAIL, WARN = "✓", "✗", "!"
WIDTH = 52  # column where the server's ✓/✗ go, as in the design's examples
PREFIX = "[tova] "
SUB = " " * 9 + "→ "
CLIENT_STEP = " " * 4 + "→ "
CLIENT_WIDTH = len(CLIENT_STEP) + 56  # the client's marks sit further right


def marked(text: str, mark: str, width: int = WIDTH) -> str:
    """`text` padded to `width`, then its mark: how both sides line up ✓/✗."""
    return f"{text.ljust(width)} {mark}"


class Out:
    def __init__(self, stream: IO[str] | None = None, color: bool | None = None, *,
                 prefix: str = PREFIX, width: int = WIDTH, done: str = SUB) -> None:
        self.stream = stream or sys.stdout
        self.prefix, self.width, self.done = prefix, width, done  # a step line's layout
        if color is None:
            color = (not os.environ.get("NO_COLOR")) and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.color = color
        self._open: str | None = None  # a step line waiting for its mark
        self._broken = False
        self._started = 0.0  # when the open step began (monotonic)
        self.clock: Callable[[], float] = time.monotonic
        # Every finished line also goes here (the journal on a server), without colour.
        self.journal: Callable[[str], None] | None = None
        self._pending = ""
        self.gone = False  # the reader (the pusher's connection) went away

    def _hang_up(self) -> None:
        """The pusher is gone (EPIPE): the deploy carries on, its lines still reach the
        journal. When that reader was this process's stdout/stderr, those (and what child
        processes inherit) point at /dev/null from now on."""
        self.gone = True
        if _fileno(self.stream) not in (1, 2):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        for name in ("stdout", "stderr"):
            if _fileno(getattr(sys, name)) in (1, 2):
                setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)


    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    @property
    def ok_mark(self) -> str:
        return self._paint(OK, "32")

    @property
    def fail_mark(self) -> str:
        return self._paint(FAIL, "31")

    def write(self, text: str) -> None:
        if not self.gone:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                self._hang_up()
        if self.journal is not None:
            self._pending += text
            *done, self._pending = self._pending.split("\n")
            for line in done:
                plain = _ANSI.sub("", line).rstrip()
                if plain:
                    self.journal(plain)

    def _close_open(self) -> None:
        if self._open is not None:
            if not self._broken:
                self.write("\n")
            self._open = None

    def line(self, text: str = "") -> None:
        self._close_open()
        self.write(text + "\n")

    def info(self, text: str) -> None:
        self.line(PREFIX + text)

    def sub(self, text: str, ok: bool | None = None, extra: str = "") -> None:
        self.line(self._marked(SUB + text, ok, extra))

    def begin(self, text: str) -> None:
        """Start a step line; end() puts the mark and the step's time on it, or on a short
        `→ done` line when tool output came in between (never the step's text twice)."""
        self._close_open()
        self._open = self.prefix + text
        self._broken = False
        self._started = self.clock()
        self.write(self._open.ljust(self.width))

    def end(self, ok: bool, extra: str = "", timed: bool = True) -> None:
        if self._open is None:
            return
        if self._broken:
            self.write((self.done + ("done" if ok else "failed")).ljust(self.width))
        took = f" {elapsed(self.clock() - self._started)}" if timed else ""
        mark = (self.ok_mark if ok else self.fail_mark) + took + (f" {extra}" if extra else "")
        self.write(" " + mark + "\n")
        self._open = None

    @contextmanager
    def timed(self, text: str) -> Iterator[None]:
        """begin(text), then end(True) with the time taken, or end(False) if it raised."""
        self.begin(text)
        try:
            yield
        except BaseException:
            self.end(False)
            raise
        self.end(True)

    def passthrough(self, text: str) -> None:
        """Output of a tool the step runs (the compiler), shown as it arrives."""
        if self._open is not None and not self._broken:
            self.write("\n")
            self._broken = True
        self.write("  " + text.rstrip("\n") + "\n")

    def step(self, text: str, ok: bool, extra: str = "") -> None:
        self.begin(text)
        self.end(ok, extra, timed=False)

    def _marked(self, text: str, ok: bool | None, extra: str) -> str:
        if ok is None:
            return text
        mark = self.ok_mark if ok else self.fail_mark
        return marked(text, mark) + (f" {extra}" if extra else "")


def elapsed(seconds: float) -> str:
    """A step's duration as the pusher reads it: 0.4s, 12s, 1m05s."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


class OutputLines:
    """A file-like that feeds a command's output (provision.sh) into the progress lines."""

    def __init__(self, out: Out) -> None:
        self.out = out

    def write(self, text: str) -> None:
        for line in text.splitlines():
            self.out.passthrough(line)

    def flush(self) -> None:
        pass


def heading(text: str) -> str:
    """A client screen's heading line."""
    return f"  {text}"


def step(label: str, mark: str = OK) -> str:
    """A client screen's `→ label ... ✓` line (plain text: it reads the same in a log)."""
    return marked(CLIENT_STEP + label, mark, CLIENT_WIDTH).rstrip()


def client_steps() -> Out:
    """The client's printer for steps that take a while: `→ label ... ✓ 41s`, the server's
    progress lines (passthrough) under the label as they come, then `→ done ✓ 41s`."""
    return Out(sys.stdout, color=False, prefix=CLIENT_STEP, width=CLIENT_WIDTH, done=" " * 6 + "→ ")


def note(label: str) -> str:
    return CLIENT_STEP + label


def say(*lines: str) -> None:
    """Print finished client lines on stdout, through the server's printer."""
    out = Out(sys.stdout, color=False)
    for text in lines:
        out.line(text)


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined, no-any-return]
    except (AttributeError, OSError, ValueError):
        return None
