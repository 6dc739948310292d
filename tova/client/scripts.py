"""The small shell scripts the client runs on a server, kept in server_scripts/ (shipped
in the package as tova/data/) so they can be read and checked like any other script."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def server_script(name: str) -> str:
    return (resources.files("tova") / "data" / name).read_text(encoding="utf-8")
