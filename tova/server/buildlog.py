"""The compiler's output on its way to the pusher: file locations relative to the project
(not the server's temporary checkout), warnings summarised (the first few shown, the count,
all of them in the journal and in the app's last-build.log), everything else as it comes.

The real compiler prints each warning as a block: `warning: MESSAGE`, then an indented
`--> FILE:LINE:COL` and a code frame (`  3 |     text("hi") }`, `    |     ^^^^`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

WARNINGS_SHOWN = 3
_WARNING = re.compile(r"^\s*warning\b[:\[]", re.IGNORECASE)
_FRAME = re.compile(r"^\s*(-->|\||\d+\s*\||$)")  # location, code-frame or blank line


def relativize(line: str, roots: Iterable[str]) -> str:
    """`/opt/tova/apps/x/build/deploy-q0/src/src/app.tova:8:16` → `src/app.tova:8:16`."""
    for root in roots:
        if root:
            line = line.replace(root.rstrip("/") + "/", "")
    return line


@dataclass
class BuildOutput:
    """Feed it the compiler's lines (run_tool's passthrough)."""

    show: Callable[[str], None]  # to the pusher (and, through Out, the journal)
    hide: Callable[[str], None]  # to the journal only
    roots: tuple[str, ...] = ()
    shown: int = WARNINGS_SHOWN
    warnings: int = 0
    lines: list[str] = field(default_factory=list)  # everything, for last-build.log
    _in_warning: bool = False
    _visible: bool = True

    def feed(self, raw: str) -> None:
        line = relativize(raw.rstrip("\n"), self.roots)
        self.lines.append(line)
        if _WARNING.match(line):
            self.warnings += 1
            self._in_warning = True
            self._visible = self.warnings <= self.shown
        elif self._in_warning and _FRAME.match(line):
            pass  # the warning's location and code frame: shown with it (or not)
        else:
            self._in_warning = False
            self._visible = True
        if self._visible and not (self._in_warning and _is_code(line)):
            self.show(line)
        else:
            self.hide(line)

    def summary(self, env: str) -> str | None:
        if self.warnings <= self.shown:
            return None
        return (f"{self.warnings} compiler warnings; the first {self.shown} are above, all of them in "
                f"`tova deploy {env} --logs --build`")

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def _is_code(line: str) -> bool:
    """A code-frame line of a warning (not its message or `--> location`): left out of the
    push output even for the warnings shown, to keep each to two lines."""
    s = line.strip()
    return not s.startswith("-->") and not _WARNING.match(line)
