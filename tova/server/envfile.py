"""`.env.production`: parse and write in a form systemd's EnvironmentFile= reads back
byte-exact. Values may hold spaces, `=`, quotes, `#`, `$`, backslashes and newlines.

Writing: every value in double quotes, with `\\ " $ `` ` backslash-escaped (systemd's
double-quote escapes). Reading accepts what people and provisioning scripts also write:
unquoted values, single quotes, `export KEY=...`, comments (# or ;) and blank lines."""

from __future__ import annotations

import os
from pathlib import Path

from tova.errors import TovaError
from tova.naming import is_env_var
from tova.quoting import env_file_quote
from tova.server.atomic import write_atomic

_ESCAPED = '\\"$`'


def check_key(key: str) -> str:
    if not is_env_var(key):
        raise TovaError(
            f"invalid variable name {key!r}",
            hint="names use letters, digits and '_' and do not start with a digit",
        )
    return key


def check_value(key: str, value: str) -> str:
    if "\x00" in value:
        raise TovaError(f"the value of {key} contains a NUL byte", hint="remove it")
    return value


quote = env_file_quote  # one quoting rule for both env files


def serialize(values: dict[str, str]) -> str:
    return "".join(f"{check_key(k)}={quote(check_value(k, v))}\n" for k, v in values.items())


def parse(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # skip blank space and comment lines
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        eq = text.find("=", i)
        nl = text.find("\n", i)
        if eq == -1 or (nl != -1 and nl < eq):
            raise TovaError(f"line without '=' in env file: {text[i:nl if nl != -1 else n]!r}",
                            hint="each line is NAME=value")
        key = text[i:eq].strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        check_key(key)
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        value, i = _value(text, i)
        out[key] = value
    return out


def _value(text: str, i: int) -> tuple[str, int]:
    """The value starting at `i` (double-quoted, single-quoted or bare) and the index of the
    end of its line."""
    n = len(text)
    if i < n and text[i] == '"':
        value, i = _double_quoted(text, i + 1)
    elif i < n and text[i] == "'":
        end = text.find("'", i + 1)
        if end == -1:
            raise TovaError("unterminated single-quoted value in env file", hint="close the quote")
        value, i = text[i + 1:end], end + 1
    else:
        return _bare(text, i)
    # after a quoted value: ignore trailing blanks up to the end of the line
    while i < n and text[i] != "\n":
        i += 1
    return value, i


def _double_quoted(text: str, i: int) -> tuple[str, int]:
    """From just after the opening quote: the value (\\ escapes of _ESCAPED undone, a
    backslash-newline continues the line) and the index after the closing quote."""
    n = len(text)
    buf: list[str] = []
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in _ESCAPED:
                buf.append(nxt)
            elif nxt != "\n":  # a backslash-newline is a line continuation
                buf.append("\\" + nxt)
            i += 2
            continue
        buf.append(text[i])
        i += 1
    if i >= n:
        raise TovaError("unterminated double-quoted value in env file", hint="close the quote")
    return "".join(buf), i + 1


def _bare(text: str, i: int) -> tuple[str, int]:
    """An unquoted value: up to the end of the line, backslash escapes the next character,
    trailing blanks dropped."""
    n = len(text)
    buf: list[str] = []
    while i < n and text[i] != "\n":
        if text[i] == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                buf.append(text[i + 1])
            i += 2
            continue
        buf.append(text[i])
        i += 1
    return "".join(buf).rstrip(" \t\r"), i


def read(path: Path) -> dict[str, str]:
    try:
        return parse(Path(path).read_text())
    except FileNotFoundError:
        return {}


def _write(path: Path, values: dict[str, str]) -> None:
    write_atomic(path, serialize(values), mode=0o600)


def ensure(path: Path) -> None:
    """Create an empty secrets file when there is none; never touch an existing one."""
    if not Path(path).exists():
        _write(path, {})
    else:
        os.chmod(path, 0o600)


def set_values(path: Path, updates: dict[str, str]) -> list[str]:
    for k, v in updates.items():
        check_key(k)
        check_value(k, v)
    values = read(path)
    values.update(updates)
    _write(path, values)
    return sorted(updates)


def unset(path: Path, keys: list[str]) -> list[str]:
    values = read(path)
    removed = [k for k in keys if values.pop(k, None) is not None]
    _write(path, values)
    return removed


def missing(path: Path, required: tuple[str, ...] | list[str]) -> list[str]:
    values = read(path)
    return [name for name in required if not values.get(name)]
