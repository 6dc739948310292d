"""Build reader output (Program, DeployBlock) directly, for tests of config and inference
that should not depend on the reader."""

from __future__ import annotations

from tova.errors import Location
from tova.lang.program import Body, DeployBlock, Field, SubBlock, Value

LOC = Location("src/app.tova", 1, 1)


def value(v: object, line: int = 2) -> Value:
    loc = Location("src/app.tova", line, 11)
    if isinstance(v, Value):
        return v
    if isinstance(v, bool):
        return Value("bool", v, "true" if v else "false", loc)
    if isinstance(v, int):
        return Value("int", v, str(v), loc)
    if isinstance(v, str):
        return Value("string", v, '"' + v + '"', loc)
    if isinstance(v, list):
        return Value("array", tuple(value(x) for x in v), repr(v), loc)
    raise TypeError(v)


def expr(text: str) -> Value:
    return Value("expr", None, text, Location("src/app.tova", 2, 11))


def body(fields: dict | None = None, **blocks: dict) -> Body:
    fs = tuple(
        Field(k, value(v, i + 2), Location("src/app.tova", i + 2, 3)) for i, (k, v) in enumerate((fields or {}).items())
    )
    subs = []
    for name, content in blocks.items():
        if isinstance(content, Body):
            subs.append(SubBlock(name, LOC, content))
        else:
            subs.append(SubBlock(name, LOC, body(content)))
    return Body(fs, tuple(subs))


def deploy(name: str = "prod", fields: dict | None = None, **blocks) -> DeployBlock:
    base = {"server": "root@203.0.113.1", "domain": "myapp.com"}
    base.update(fields or {})
    base = {k: v for k, v in base.items() if v is not None}
    return DeployBlock(name, LOC, body(base, **blocks))
