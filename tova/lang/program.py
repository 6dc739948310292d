"""What the reader returns: the top-level blocks of a project and the few facts that
imply infrastructure. Pure data; built by tova.lang.reader, read by config and infer."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal, TypeVar

from tova.errors import Location

ValueKind = Literal["string", "int", "float", "bool", "nil", "array", "expr"]
_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen dataclass an __init__ that fills the instance dict directly: the
    generated one calls object.__setattr__ per field, which costs the reader about 1 us
    per object, and it builds one per block, field and route (Value and Field spell
    theirs out)."""
    fs = fields(cls)  # type: ignore[arg-type]
    params = ", ".join(f.name if f.default is MISSING else f"{f.name}=_d_{f.name}" for f in fs)
    body = "".join(f"    d[{f.name!r}] = {f.name}\n" for f in fs)
    scope: dict[str, Any] = {f"_d_{f.name}": f.default for f in fs}
    exec(f"def __init__(self, {params}):\n    d = self.__dict__\n{body}", scope)  # the way dataclasses does it
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - (mypy refuses assigning a method)
    return cls


@dataclass(frozen=True, init=False)
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

    def __init__(self, kind: ValueKind, value: object, text: str, loc: Location) -> None:
        d = self.__dict__  # (frozen: set once; see Location.__init__)
        d["kind"] = kind
        d["value"] = value
        d["text"] = text
        d["loc"] = loc


@dataclass(frozen=True, init=False)
class Field:
    key: str
    value: Value
    loc: Location

    def __init__(self, key: str, value: Value, loc: Location) -> None:
        d = self.__dict__  # (frozen: set once; see Location.__init__)
        d["key"] = key
        d["value"] = value
        d["loc"] = loc


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
