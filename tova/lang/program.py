"""What the reader returns: the top-level blocks of a project and the few facts that
imply infrastructure. Pure data; built by tova.lang.reader, read by config and infer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tova.errors import Location
from tova.frozen import quick_init

ValueKind = Literal["string", "int", "float", "bool", "nil", "array", "expr"]


@quick_init
@dataclass(frozen=True)
class Value:
    """A field value as written in source.

    kind "string": value is the decoded str (escapes processed). A string holding an
    interpolation `{...}` has kind "expr" (it is not a literal).
    kind "int"/"float"/"bool"/"nil": value is the Python value.
    kind "array": value is a tuple of Value.
    kind "expr": anything else (identifiers, calls, `-1`, arithmetic); value is None.
    text is always the exact source text of the value.
    """

    kind: ValueKind
    value: object
    text: str
    loc: Location


@quick_init
@dataclass(frozen=True)
class Field:
    key: str
    value: Value
    loc: Location


@quick_init
@dataclass(frozen=True)
class Body:
    """`key: value` fields and named sub-blocks (`env { ... }`, `db { postgres { ... } }`),
    in source order."""

    fields: tuple[Field, ...] = ()
    blocks: tuple[SubBlock, ...] = ()


@quick_init
@dataclass(frozen=True)
class SubBlock:
    name: str
    loc: Location
    body: Body


@quick_init
@dataclass(frozen=True)
class DeployBlock:
    name: str
    loc: Location
    body: Body


@quick_init
@dataclass(frozen=True)
class DbDecl:
    """A `db { ... }` inside a server block (at any depth of route groups)."""

    fields: tuple[Field, ...]
    loc: Location


@quick_init
@dataclass(frozen=True)
class SseDecl:
    path: str | None  # None when the path is not a plain string literal
    loc: Location


@quick_init
@dataclass(frozen=True)
class RouteDecl:
    """`route METHOD "/path" => ...` (at any depth of route groups)."""

    method: str
    path: str | None  # with the groups' prefixes; None when not a plain string literal
    loc: Location


@quick_init
@dataclass(frozen=True)
class ServerBlock:
    name: str | None
    loc: Location
    dbs: tuple[DbDecl, ...] = ()
    websockets: tuple[Location, ...] = ()
    sse: tuple[SseDecl, ...] = ()
    routes: tuple[RouteDecl, ...] = ()


@quick_init
@dataclass(frozen=True)
class BrowserBlock:
    name: str | None
    loc: Location


@quick_init
@dataclass(frozen=True)
class AuthDecl:
    kind: str  # "jwt" when not written
    env_refs: tuple[str, ...]  # names in env("NAME") calls inside the auth block
    loc: Location


@quick_init
@dataclass(frozen=True)
class SecurityBlock:
    loc: Location
    auths: tuple[AuthDecl, ...] = ()
    cors_origins: tuple[Value, ...] = ()  # elements of `cors { origins: [...] }`


@quick_init
@dataclass(frozen=True)
class DataSource:
    name: str
    path: str | None  # the literal argument of read("..."), None if not a literal
    loc: Location


@quick_init
@dataclass(frozen=True)
class DataBlock:
    loc: Location
    sources: tuple[DataSource, ...] = ()


@dataclass(frozen=True)
class Program:
    project_name: str
    root: str  # project directory
    source_dir: str  # the folder whose *.tova files (sub-folders included) were read
    name_from: str = "tova.toml"  # "tova.toml" ([project] name) or "folder" (its name)
    app_base: str | None = None  # tova.toml [tova-deploy] name
    app_names: tuple[tuple[str, str], ...] = ()  # tova.toml [tova-deploy.apps]: (env, app)
    files: tuple[str, ...] = ()  # paths read, sorted
    deploys: tuple[DeployBlock, ...] = ()
    servers: tuple[ServerBlock, ...] = ()
    browsers: tuple[BrowserBlock, ...] = ()
    securities: tuple[SecurityBlock, ...] = ()
    datas: tuple[DataBlock, ...] = ()
    line_count: int = 0
