"""ssh and remote failures turned into one line of cause and one line of remedy.

ssh reports its own failures only as exit status 255 plus text on stderr, so the text
chooses the message; the exit status decides that it *was* an ssh failure."""

from __future__ import annotations

from tova.errors import RemoteError

# (substring of ssh's stderr, message, hint); first match wins, most specific first.
_SSH_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "the host key of {t} has CHANGED since you last connected",
        "if the server was reinstalled, remove the old key with `ssh-keygen -R HOST` and "
        "verify the new fingerprint; otherwise someone may be intercepting the connection",
    ),
    (
        "Could not resolve hostname",
        "cannot resolve the host name of {t}",
        "check the `server` in your deploy block and the Host alias in ~/.ssh/config; "
        "a custom ssh config goes in TOVA_SSH_CONFIG=FILE (then `tova deploy` with --setup-git "
        "sets the project's git config core.sshCommand so a plain git push uses it too)",
    ),
    (
        "Host key verification failed",
        "the host key of {t} is not known",
        "connect once with `ssh {t}` to check and accept the server's fingerprint",
    ),
    (
        "No ED25519 host key is known",
        "the host key of {t} is not known",
        "connect once with `ssh {t}` to check and accept the server's fingerprint",
    ),
    (
        "Permission denied",
        "{t} refused authentication",
        "make sure your public key is in the server's authorized_keys and your agent "
        "has it (`ssh-add -l`)",
    ),
    (
        "Too many authentication failures",
        "{t} refused authentication (too many keys offered)",
        "set IdentityFile and `IdentitiesOnly yes` for this host in ~/.ssh/config",
    ),
)

_UNREACHABLE = (
    "Connection refused",
    "Connection timed out",
    "Operation timed out",
    "No route to host",
    "Network is unreachable",
    "Connection closed by",
    "Connection reset",
    "kex_exchange_identification",
)


def from_ssh_failure(target: str, exit_code: int, stderr: str) -> RemoteError:
    for needle, message, hint in _SSH_PATTERNS:
        if needle in stderr:
            return RemoteError(message.format(t=target), hint=hint.format(t=target))
    for needle in _UNREACHABLE:
        if needle in stderr:
            return RemoteError(
                f"cannot reach {target}: {needle.lower()}",
                hint="check that the server is up, the address and port are right, and "
                "that SSH is allowed through any firewall",
            )
    last = _last_line(stderr) or f"ssh exited with status {exit_code}"
    return RemoteError(f"ssh to {target} failed: {last}", hint=f"try `ssh {target}` by hand to see why")


def toolkit_missing(target: str, env: str | None) -> RemoteError:
    if env is None:  # --list: no project, so no environment to name
        hint = "set the server up from a project that deploys to it: `tova deploy ENV --setup-git`"
    else:
        hint = f"set the server up with `tova deploy {env} --setup-git`"
    return RemoteError(f"the tova toolkit is not installed on {target}", hint=hint)


def not_root(target: str, user: str) -> RemoteError:
    return RemoteError(
        f"{user} on {target} is not root and cannot use sudo without a password",
        hint="connect as root (server: \"root@HOST\") or allow passwordless sudo for this user",
    )


def python_missing(target: str, detail: str) -> RemoteError:
    return RemoteError(
        f"python3 with venv support is missing on {target} and could not be installed: {detail}",
        hint="install python3 and python3-venv on the server (apt-get install python3 python3-venv)",
    )


def from_remote_failure(target: str, command: str, exit_code: int, stderr: str) -> RemoteError:
    """A remote command failed without an error of its own shape (not tova-release's)."""
    last = _last_line(stderr) or f"exit status {exit_code}"
    return RemoteError(f"{command} failed on {target}: {last}", hint="run it by hand over ssh to see the full output")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""
