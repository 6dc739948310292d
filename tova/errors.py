"""Errors as values with a location and a hint, turned into text once, at the CLI edge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tova.frozen import quick_init

# Exit codes a script can rely on.
EXIT_OK = 0
EXIT_FAILED = 1          # a deploy or command ran and failed (e.g. rolled back)
EXIT_USAGE = 2           # bad input: .tova errors, bad deploy config, bad arguments
EXIT_MISSING_SECRETS = 3  # required secrets are not set on the server
EXIT_LOCKED = 4          # another deploy of the same app holds the lock
EXIT_REMOTE = 5          # SSH / server unreachable or not set up


@quick_init
@dataclass(frozen=True)
class Location:
    """A place in a .tova file; line and col are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class TovaError(Exception):
    """A user-facing error: one line of cause, one of remedy, and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        loc: Location | None = None,
        source_line: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.loc = loc
        self.source_line = source_line
        self.already_shown = False  # set when a remote command already printed the cause
        if exit_code is not None:
            self.exit_code = exit_code

    def render(self) -> str:
        head = f"{self.loc}: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc and self.source_line is not None:
            text = self.source_line.rstrip("\n").expandtabs(1)
            lines.append(f"  {text}")
            lines.append("  " + " " * max(self.loc.col - 1, 0) + "^")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class TovaSyntaxError(TovaError):
    """The reader could not make sense of a .tova file."""


class ConfigError(TovaError):
    """A deploy block is invalid."""


class DeployError(TovaError):
    """A deploy step failed on the server."""

    exit_code = EXIT_FAILED


class MissingSecretsError(TovaError):
    exit_code = EXIT_MISSING_SECRETS

    def __init__(self, names: list[str], env: str) -> None:
        self.names = names
        cmds = " ".join(f"{n}=..." for n in names)
        super().__init__(
            f"missing required secrets: {', '.join(names)}",
            hint=f"set them with: tova env {env} set {cmds}",
        )


class LockedError(TovaError):
    exit_code = EXIT_LOCKED


class RemoteError(TovaError):
    exit_code = EXIT_REMOTE


def disk_full(exc: BaseException, where: str = "") -> TovaError | None:
    """A full disk (or quota) as the user's problem to fix, not a bug of ours; None for
    any other error."""
    import errno

    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    path = f": cannot write {exc.filename}" if exc.filename else ""
    return DeployError(f"the server's disk is full{path}{where}",
                       hint="free space on the server (see df -h; old releases go with a lower keep_releases, "
                            "removed apps' archives stay under the toolkit's archive/), then try again")


def internal_error_text(exc: BaseException) -> str:
    """One line of cause and one of remedy for a bug of ours (not a user mistake)."""
    return (
        f"error: internal error: {type(exc).__name__}: {exc}\n"
        "hint: this is a bug in tova-deploy; run again with TOVA_DEBUG=1 for the traceback and report it"
    )


def run_at_edge(body: Callable[[], int], remedy: Callable[[str], str] | None = None) -> int:
    """The one place errors become text and an exit code (both `tova` and `tova-release`):
    a TovaError as `file:line:col: message` + hint, a bug of ours as one line (its
    traceback only with TOVA_DEBUG=1), Ctrl-C as 130. remedy rewrites a hint for whoever
    reads it (tova-release run by the client)."""
    import os
    import sys

    try:
        return body()
    except TovaError as err:
        sys.stdout.flush()
        if remedy is not None and err.hint:
            err.hint = remedy(err.hint)
        if not err.already_shown:  # a remote command already printed it
            print(err.render(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("TOVA_DEBUG"):
            raise
        full = disk_full(exc)
        print(full.render() if full else internal_error_text(exc), file=sys.stderr)
        return EXIT_FAILED
