"""Frozen dataclasses the reader builds by the thousand (a location, value, field, block
per statement it reads), made cheaper to construct."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen dataclass an __init__ that fills the instance dict directly: the
    generated one calls object.__setattr__ per field, about 1 us per object. Plain
    defaults only (a default_factory would need the generated __init__)."""
    fs = fields(cls)  # type: ignore[arg-type]
    if any(f.default_factory is not MISSING for f in fs):
        raise TypeError(f"quick_init: {cls.__name__} has a default_factory")
    params = ", ".join(f.name if f.default is MISSING else f"{f.name}=_d_{f.name}" for f in fs)
    body = "".join(f"    d[{f.name!r}] = {f.name}\n" for f in fs)
    scope: dict[str, Any] = {f"_d_{f.name}": f.default for f in fs}
    exec(f"def __init__(self, {params}):\n    d = self.__dict__\n{body}", scope)  # the way dataclasses does it
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - (mypy refuses assigning a method)
    return cls
