"""Quoting filters: one per target format, registered in the jinja environment and used by
every template. Each either returns a token that the target reads back byte-for-byte as
the input, or raises ValueError for input the format cannot carry safely."""

from __future__ import annotations

import hashlib
import re

from tova.naming import is_env_var

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sh(value: object) -> str:
    """One shell word (bash/POSIX): single-quoted, with ' written as '\\''."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a shell word cannot contain a NUL byte")
    if text and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", text):
        return text  # nothing in it that a shell would interpret
    return "'" + text.replace("'", "'\\''") + "'"


def systemd_env(name: str, value: object) -> str:
    """A quoted `Environment=` assignment "NAME=value" as systemd reads it: inside double
    quotes it C-unescapes (so \\ and " are escaped) and it expands %-specifiers (so % is
    doubled). A newline would end the line, so it is refused; other control characters
    are written as \\xNN escapes."""
    if not is_env_var(name):
        raise ValueError(f"invalid environment variable name: {name!r}")
    text = str(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ValueError(f"environment value of {name} contains a newline or NUL byte")
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "%":
            out.append("%%")
        elif _CONTROL.match(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + name + "=" + "".join(out) + '"'


def env_file_assignment(name: str, value: object) -> str:
    """NAME="value" as systemd's EnvironmentFile= reads it back byte-exact: inside double
    quotes \\ " $ and ` are backslash-escaped; no %-specifiers there. One line each (a
    deploy block value with a newline is refused, as it was in the unit)."""
    if not is_env_var(name):
        raise ValueError(f"invalid environment variable name: {name!r}")
    text = str(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ValueError(f"environment value of {name} contains a newline or NUL byte")
    return name + "=" + env_file_quote(text)


def env_file_quote(text: str) -> str:
    return '"' + "".join("\\" + c if c in '\\"$`' else c for c in text) + '"'


def systemd_path(value: object) -> str:
    """An absolute path in a unit file setting that takes a path (WorkingDirectory=,
    ReadWritePaths=, EnvironmentFile=, ExecStart= arguments). Spaces, quotes and
    backslashes would need different quoting in each of those settings, so they are
    refused; % is doubled because systemd expands specifiers there."""
    text = str(value)
    if not text.startswith("/"):
        raise ValueError(f"not an absolute path: {text!r}")
    if re.search(r"[\s\"'\\;]", text) or _CONTROL.search(text):
        raise ValueError(f"path {text!r} contains whitespace, quotes, ';' or control characters")
    return text.replace("%", "%%")


def systemd_text(value: object) -> str:
    """Free text at the end of a unit setting (Description=): one line, % doubled."""
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError(f"unit text {text!r} contains control characters")
    return text.replace("%", "%%")


def caddy(value: object) -> str:
    """One Caddyfile token, always double-quoted with \\" escapes. Caddy's lexer cannot
    carry a backslash before a quote or at the end of a token, replaces {placeholders}
    and {$ENV} in most values, and ends a line at a newline: such input is refused."""
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError(f"Caddyfile value {text!r} contains a newline or control character")
    if "\\" in text:
        raise ValueError(f"Caddyfile value {text!r} contains a backslash")
    if "{" in text or "}" in text:
        raise ValueError(f"Caddyfile value {text!r} contains braces (Caddy placeholders)")
    return '"' + text.replace('"', '\\"') + '"'


def comment(value: object) -> str:
    """Text inside a one-line comment (#) of a script, unit or Caddyfile: a line break
    would end the comment and start code, so control characters are refused."""
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError(f"{text!r} contains a newline or control character")
    return text


def heredoc_delimiter(content: str, base: str = "TOVA_EOF") -> str:
    """A here-document delimiter that provably does not occur as a line of content."""
    lines = set(content.split("\n"))
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    # len(lines) + 1 distinct candidates: at least one is not a line of content.
    for i in range(len(lines) + 1):
        candidate = f"{base}_{digest[:12].upper()}" + (f"_{i}" if i else "")
        if candidate not in lines:
            return candidate
    raise AssertionError("unreachable: more distinct candidates than lines")


FILTERS = {
    "sh": sh,
    "systemd_env": systemd_env,
    "env_file": env_file_assignment,
    "systemd_path": systemd_path,
    "systemd_text": systemd_text,
    "caddy": caddy,
    "comment": comment,
}
