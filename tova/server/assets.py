"""What Caddy serves of a release: `static/`, made from the production build's browser
files and the project's `public/`, so that the server bundle is never reachable by URL
(see tova.served: the client script goes to the URL index.html loads it from)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tova.layout import STATIC
from tova.served import CLIENT, PAGES, script_dir


def arrange_static(build_out: Path, public: Path | None) -> list[str]:
    """Move the browser build (and `public/`, when given) into build_out/static; the
    served paths, relative to the site root, sorted."""
    static = build_out / STATIC
    if public is not None and public.is_dir():
        # The checkout is thrown away after the deploy: move, don't copy.
        shutil.move(str(public), str(static))
    index = build_out / "index.html"
    folder = script_dir(index.read_text(errors="replace")) if index.is_file() else script_dir("")
    for name in PAGES:
        if (build_out / name).is_file():
            static.mkdir(exist_ok=True)
            (build_out / name).replace(static / name)  # the build's page wins over public/'s
    scripts = [p for p in build_out.iterdir() if CLIENT.fullmatch(p.name)]
    if scripts:
        (static / folder).mkdir(parents=True, exist_ok=True)
        for p in scripts:
            p.replace(static / folder / p.name)
    if not static.is_dir():
        return []
    return sorted(str(p.relative_to(static)) for p in static.rglob("*") if p.is_file())
