"""DeployConfig: one environment's deploy block, merged and validated.

Every rule here guards a value that later reaches a shell script, a systemd unit or a
Caddyfile; the renderers quote again, but nothing unchecked gets that far."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tova.errors import ConfigError, Location
from tova.lang.lexer import KEYWORDS
from tova.lang.program import DeployBlock, Field, SubBlock, Value
from tova.naming import APP_NAME_RULE, is_app_name, is_env_name, is_env_var

PG_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|kb|m|mb|g|gb)\s*$", re.IGNORECASE)
HEALTH_RE = re.compile(r"^/[A-Za-z0-9._~%/:@!$&()*+,;=?-]*$")
SQLITE_PATH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
SSH_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
SERVER_HOST_RE = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9._-]{0,252})(?::(?P<port>\d{1,5}))?$"
)
DNS_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

UNITS = {"k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
DB_ENGINES = ("postgres", "redis", "sqlite")


@dataclass(frozen=True)
class Prop:
    type: type
    default: object
    required: bool = False


# Exactly the fields the compiler accepts in a deploy block (any other is a compile
# error there). The app-name override lives in tova.toml [tova-deploy] instead.
PROPERTIES: dict[str, Prop] = {
    "server": Prop(str, None, required=True),
    "domain": Prop(str, None, required=True),
    "instances": Prop(int, 1),
    "memory": Prop(str, "512mb"),
    "branch": Prop(str, "main"),
    "health": Prop(str, "/healthz"),
    "health_interval": Prop(int, 30),
    "health_timeout": Prop(int, 5),
    "restart_on_failure": Prop(bool, True),
    "keep_releases": Prop(int, 5),
}
# Upper bounds systemd and the health timer accept: beyond them a value would silently
# mean something else (a MemoryMax= past the 64-bit byte count means no limit).
MAX_MEMORY_BYTES = 1024**4  # 1 TiB
MAX_HEALTH_SECONDS = 86_400  # one day
# Set by the platform for each instance: a deploy block must not override them.
RESERVED_ENV = {
    "PORT": "each instance gets its own PORT from the server (3001, 3002, ...); "
            "env { PORT } would give every instance the same port",
}
SUB_BLOCKS = ("env", "db")
DB_PROPERTIES: dict[str, dict[str, type]] = {
    "postgres": {"name": str, "port": int},
    "redis": {"maxmemory": str},
    "sqlite": {"path": str},
}


@dataclass(frozen=True)
class DbOverride:
    engine: str
    settings: dict[str, object]
    loc: Location


@dataclass(frozen=True)
class DeployConfig:
    env: str
    app: str
    server: str
    domain: str  # ASCII (IDN labels as punycode)
    instances: int = 1
    memory: str = "512mb"
    memory_bytes: int = 512 * 1024**2
    branch: str = "main"
    health: str = "/healthz"
    health_interval: int = 30
    health_timeout: int = 5
    restart_on_failure: bool = True
    keep_releases: int = 5
    env_vars: tuple[tuple[str, str], ...] = ()
    db_overrides: tuple[DbOverride, ...] = ()
    loc: Location | None = None
    locations: dict[str, Location] = field(default_factory=dict, compare=False)


def available_envs(blocks: tuple[DeployBlock, ...] | list[DeployBlock]) -> list[str]:
    seen: list[str] = []
    for b in blocks:
        if b.name not in seen:
            seen.append(b.name)
    return seen


def build_config(
    blocks: list[DeployBlock] | tuple[DeployBlock, ...], env: str, project: str, app: str | None = None,
) -> DeployConfig:
    """Merge the deploy blocks named `env` (later keys win) and validate them. The app's
    name is `app` when given (decided by tova.toml or recorded on the server), else
    derived from the project's name."""
    mine = _blocks_named(blocks, env)
    fields_, env_fields, db_blocks = _collect(mine, env)
    anchor = mine[0].loc
    values, locations = _values(fields_, env, anchor)

    def at(key: str) -> Location:
        return locations.get(key, anchor)

    server = _check_server(values["server"], at("server"))
    domain = _check_domain(values["domain"], at("domain"))
    instances = values["instances"]
    if not 1 <= instances <= 32:
        raise ConfigError(f"instances must be between 1 and 32, not {instances}", loc=at("instances"))
    memory_bytes = parse_memory(values["memory"], at("memory"), "memory")
    if memory_bytes > MAX_MEMORY_BYTES:
        raise ConfigError(f"memory {values['memory']!r} is more than 1 TB", hint='for example memory: "512mb"',
                          loc=at("memory"))
    branch = _check_branch(values["branch"], at("branch"))
    _check_health(values, at)
    if values["keep_releases"] < 1:
        raise ConfigError("keep_releases must be at least 1", loc=at("keep_releases"))
    return DeployConfig(
        env=env,
        app=_app_name(app, project, env, anchor),
        server=server,
        domain=domain,
        instances=instances,
        memory=values["memory"],
        memory_bytes=memory_bytes,
        branch=branch,
        health=values["health"],
        health_interval=values["health_interval"],
        health_timeout=values["health_timeout"],
        restart_on_failure=values["restart_on_failure"],
        keep_releases=values["keep_releases"],
        env_vars=tuple(_env_var(f, env) for f in env_fields.values()),
        db_overrides=tuple(_db_override(engine, subs) for engine, subs in db_blocks.items()),
        loc=anchor,
        locations=locations,
    )


def _blocks_named(blocks: list[DeployBlock] | tuple[DeployBlock, ...], env: str) -> list[DeployBlock]:
    """The deploy blocks of `env`, which must exist and be a valid environment name."""
    mine = [b for b in blocks if b.name == env]
    if not mine:
        envs = available_envs(blocks)
        if envs:
            raise ConfigError(
                f'no deploy block named "{env}"',
                hint="this project has: " + ", ".join(envs),
            )
        raise ConfigError(
            "this project has no deploy block",
            hint=f'add one to a .tova file: deploy "{env}" {{ server: "root@host" domain: "example.com" }}',
        )
    if not is_env_name(env):
        raise ConfigError(
            f"environment name {env!r} is not valid",
            hint="use letters, digits, '-' or '_', starting with a letter (at most 40)",
            loc=mine[0].loc,
        )
    return mine


def _collect(mine: list[DeployBlock], env: str) -> tuple[dict[str, Field], dict[str, Field],
                                                          dict[str, list[SubBlock]]]:
    """The properties, env { } fields and db { } engine blocks of the blocks, later wins."""
    fields_: dict[str, Field] = {}
    env_fields: dict[str, Field] = {}
    db_blocks: dict[str, list[SubBlock]] = {}
    for block in mine:
        _require_fields(block, env)
        for f in block.body.fields:
            fields_[f.key] = _property_field(f, env)
        for sub in block.body.blocks:
            if sub.name == "env":
                if sub.body.blocks:
                    raise ConfigError("env { } holds only NAME: value fields", loc=sub.body.blocks[0].loc)
                env_fields.update((f.key, f) for f in sub.body.fields)
            elif sub.name == "db":
                for f in sub.body.fields:
                    raise ConfigError(
                        f"db {{ }} holds engine blocks, not fields (found `{f.key}`)",
                        hint="write db { postgres { name: \"x\" } redis { maxmemory: \"256mb\" } }",
                        loc=f.loc,
                    )
                for eng in sub.body.blocks:
                    db_blocks.setdefault(eng.name, []).append(eng)
            else:
                raise _unknown(sub.name, sub.loc, list(PROPERTIES) + list(SUB_BLOCKS))
    return fields_, env_fields, db_blocks


def _property_field(f: Field, env: str) -> Field:
    """`f` when it is a known property of a deploy block; else the error that says why not."""
    if f.key in SUB_BLOCKS:
        raise ConfigError(f"`{f.key}` must be a block", hint=f"write `{f.key} {{ ... }}`", loc=f.loc)
    if f.key == "name":
        raise ConfigError(
            "the Tova compiler rejects `name` in a deploy block (Unknown deploy config field)",
            hint=f'set the app name in tova.toml: [tova-deploy.apps] then {env} = "{_str_hint(f)}"',
            loc=f.loc,
        )
    if f.key not in PROPERTIES:
        raise _unknown(f.key, f.loc, list(PROPERTIES) + list(SUB_BLOCKS))
    return f


def _values(fields_: dict[str, Field], env: str, anchor: Location) -> tuple[dict[str, Any], dict[str, Location]]:
    """Each property's literal value (checked against its type) or default, and where it was set."""
    values: dict[str, Any] = {}  # each checked against its property's type by _literal
    locations: dict[str, Location] = {}
    for key, f in fields_.items():
        values[key] = _literal(f.value, PROPERTIES[key].type, key)
        locations[key] = f.value.loc
    for key, prop in PROPERTIES.items():
        if prop.required and key not in values:
            raise ConfigError(
                f'deploy "{env}" is missing `{key}`',
                hint=_missing_hint(key),
                loc=anchor,
            )
        values.setdefault(key, prop.default)
    return values, locations


def _check_health(values: dict[str, Any], at: Callable[[str], Location]) -> None:
    health = values["health"]
    if not HEALTH_RE.match(health):
        raise ConfigError(
            f"health must be a URL path starting with '/', without spaces or quotes: {health!r}",
            hint='for example health: "/healthz"',
            loc=at("health"),
        )
    interval, timeout = values["health_interval"], values["health_timeout"]
    if not 1 <= interval <= MAX_HEALTH_SECONDS:
        raise ConfigError("health_interval must be between 1 and 86400 seconds", loc=at("health_interval"))
    if timeout < 1:
        raise ConfigError("health_timeout must be at least 1 second", loc=at("health_timeout"))
    if timeout >= interval:
        raise ConfigError(
            f"health_timeout ({timeout}) must be less than health_interval ({interval})",
            hint="a check must end before the next one starts",
            loc=at("health_timeout"),
        )


def parse_memory(text: str, loc: Location | None, what: str) -> int:
    m = MEMORY_RE.match(text)
    if not m:
        raise ConfigError(
            f"{what} {text!r} is not a size",
            hint='write a number with k, kb, m, mb, g or gb, e.g. "512mb"',
            loc=loc,
        )
    size = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if size <= 0:
        raise ConfigError(f"{what} must be more than 0", loc=loc)
    return size


def default_app_name(project: str, env: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-")
    if env.lower() in ("prod", "production"):
        return slug
    return f"{slug}-{re.sub(r'[^a-z0-9]+', '-', env.lower()).strip('-')}"


def _app_name(explicit: str | None, project: str, env: str, loc: Location) -> str:
    name = explicit if explicit is not None else default_app_name(project, env)
    if not is_app_name(name):
        where = f"app name {name!r}" if explicit is not None else \
            f"the app name {name!r} derived from project {project!r}"
        raise ConfigError(
            f"{where} is not a valid app name",
            hint=f'use {APP_NAME_RULE}; '
                 f'set it in tova.toml: [tova-deploy.apps] then {env} = "myapp"',
            loc=loc,
        )
    return name


def _require_fields(block: DeployBlock, env: str) -> None:
    """The compiler requires server and domain in EVERY block, even when another block
    of the same name has them."""
    keys = {f.key for f in block.body.fields}
    for key in ("server", "domain"):
        if key not in keys:
            raise ConfigError(
                f'deploy "{env}" block is missing `{key}` (the Tova compiler requires it in every deploy block)',
                hint=_missing_hint(key),
                loc=block.loc,
            )


def _str_hint(f: Field) -> str:
    return str(f.value.value) if f.value.kind == "string" else "myapp"


def _literal(value: Value, expected: type, key: str) -> object:
    if value.kind == "expr":
        raise ConfigError(
            f"`{key}` must be a literal value, not `{value.text}`",
            hint="deploy blocks take plain strings, integers and booleans",
            loc=value.loc,
        )
    kinds = {str: ("string",), int: ("int",), bool: ("bool",)}
    if value.kind not in kinds[expected]:
        names = {str: "a string", int: "an integer", bool: "true or false"}
        example = {str: '"..."', int: "2", bool: "true"}[expected]
        raise ConfigError(
            f"`{key}` must be {names[expected]}, not `{value.text}`",
            hint=f"for example {key}: {example}",
            loc=value.loc,
        )
    return value.value


def _unknown(key: str, loc: Location, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean `{close[0]}`?" if close else "known properties: " + ", ".join(known)
    return ConfigError(f"unknown deploy property `{key}`", hint=hint, loc=loc)


def _missing_hint(key: str) -> str:
    return {
        "server": 'add server: "root@your-server" (an SSH target)',
        "domain": 'add domain: "myapp.com"',
    }[key]


def _check_server(server: str, loc: Location) -> str:
    bad = ConfigError(
        f"server {server!r} is not an SSH target",
        hint='write "user@host", "user@host:port", "host" or an SSH alias from ~/.ssh/config',
        loc=loc,
    )
    user, sep, rest = server.rpartition("@")
    if sep and not SSH_USER_RE.match(user):
        raise bad
    m = SERVER_HOST_RE.match(rest)
    if not m or rest.startswith("-"):
        raise bad
    port = m.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ConfigError(f"server port {port} must be between 1 and 65535", loc=loc)
    return server


def _check_domain(domain: str, loc: Location) -> str:
    bad = ConfigError(
        f"domain {domain!r} is not a valid DNS name",
        hint='write a host name such as "myapp.com" or "*.myapp.com"',
        loc=loc,
    )
    name = domain.rstrip(".")
    if not name or domain != domain.strip():
        raise bad
    labels = name.split(".")
    ascii_labels = []
    for i, label in enumerate(labels):
        if label == "*" and i == 0 and len(labels) > 1:
            ascii_labels.append(label)
            continue
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                raise bad from None
        label = label.lower()
        if not DNS_LABEL_RE.match(label):
            raise bad
        ascii_labels.append(label)
    result = ".".join(ascii_labels)
    if len(result) > 253 or labels[-1].isdigit():
        raise bad
    return result


def _check_branch(branch: str, loc: Location) -> str:
    """git check-ref-format rules for a branch name."""
    problems = (
        not branch
        or branch.startswith(("-", "/"))
        or branch.endswith(("/", ".", ".lock"))
        or branch == "@"
        or any(s in branch for s in ("..", "//", "@{"))
        or any(c in branch for c in " ~^:?*[\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in branch)
        or any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/"))
    )
    if problems:
        raise ConfigError(
            f"branch {branch!r} is not a valid git branch name",
            hint='for example branch: "main" or "release/v2"',
            loc=loc,
        )
    return branch


def _env_var(f: Field, env: str) -> tuple[str, str]:
    if f.key in RESERVED_ENV:
        raise ConfigError(f"env {{ {f.key} }} is set by the server: {RESERVED_ENV[f.key]}",
                          hint=f"remove {f.key} from env {{ }}", loc=f.loc)
    if not is_env_var(f.key) or f.key in KEYWORDS:
        raise ConfigError(
            f"env name `{f.key}` is not valid",
            hint="env names are letters, digits and _, not starting with a digit",
            loc=f.loc,
        )
    if f.value.kind not in ("string", "int", "bool", "float"):
        raise ConfigError(
            f"env {f.key} must be a literal string, number or boolean, not `{f.value.text}`",
            hint=f"secrets belong in .env.production: tova env {env} set NAME=value",
            loc=f.value.loc,
        )
    v = f.value.value
    # numbers keep their source spelling (`1e3`, not "1000.0"), minus digit separators
    text = f.value.text.replace("_", "") if f.value.kind in ("int", "float") else (
        ("true" if v else "false") if isinstance(v, bool) else str(v))
    if "\x00" in text or "\n" in text or "\r" in text:
        raise ConfigError(f"env {f.key} holds a newline or NUL byte", loc=f.value.loc)
    return f.key, text


def _db_override(engine: str, subs: list[SubBlock]) -> DbOverride:
    if engine not in DB_ENGINES:
        close = difflib.get_close_matches(engine, DB_ENGINES, n=1)
        raise ConfigError(
            f"unknown database engine `{engine}`",
            hint=(f"did you mean `{close[0]}`? " if close else "") + "engines: postgres, redis, sqlite",
            loc=subs[0].loc,
        )
    known = DB_PROPERTIES[engine]
    settings: dict[str, object] = {}
    for sub in subs:
        if sub.body.blocks:
            raise ConfigError(f"{engine} {{ }} holds only fields", loc=sub.body.blocks[0].loc)
        for f in sub.body.fields:
            if f.key not in known:
                close = difflib.get_close_matches(f.key, list(known), n=1)
                raise ConfigError(
                    f"unknown {engine} setting `{f.key}`",
                    hint=f"did you mean `{close[0]}`?" if close else f"{engine} takes: " + ", ".join(known),
                    loc=f.loc,
                )
            value = _literal(f.value, known[f.key], f"{engine}.{f.key}")
            settings[f.key] = _check_db_setting(engine, f.key, value, f.value.loc)
    return DbOverride(engine, settings, subs[0].loc)


def _check_db_setting(engine: str, key: str, value: Any, loc: Location) -> object:
    if engine == "postgres" and key == "name" and not PG_IDENT_RE.match(value):
        raise ConfigError(
            f"postgres name {value!r} is not a plain identifier",
            hint="use letters, digits and _, starting with a letter or _ (at most 63)",
            loc=loc,
        )
    if engine == "postgres" and key == "port" and not 1 <= value <= 65535:
        raise ConfigError(f"postgres port must be between 1 and 65535, not {value}", loc=loc)
    if engine == "redis" and key == "maxmemory":
        return parse_memory(value, loc, "redis maxmemory")
    if engine == "sqlite" and key == "path":
        return check_relative_path(value, loc, "sqlite path")
    return value


def check_relative_path(path: str, loc: Location | None, what: str) -> str:
    clean = path[2:] if path.startswith("./") else path
    if not SQLITE_PATH_RE.match(clean) or ".." in clean.split("/"):
        raise ConfigError(
            f"{what} {path!r} must be a relative path of letters, digits, '.', '_', '-' and '/'",
            hint='for example "app.db" or "db/app.db"',
            loc=loc,
        )
    return clean
