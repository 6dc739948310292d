"""What Caddy serves of a release: `static/`, made from the production build's browser
files and the project's `public/`, so that the server bundle is never reachable by URL.

The build writes `index.html`, `404.html`, `200.html` and `client.<hash>.js` (+ `.min.js`)
into its output root, and index.html loads `/.tova-out/client.<hash>.js`; that URL is
where the script goes in `static/`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tova.layout import STATIC

SCRIPT_URL_DIR = ".tova-out"  # the URL folder index.html loads the client script from
PAGES = ("index.html", "404.html", "200.html")
CLIENT = re.compile(r"client\.[0-9a-f]{12}(\.min)?\.js")


def arrange_static(build_out: Path, public: Path | None) -> list[str]:
    """Move the browser build (and `public/`, when given) into build_out/static; the
    served paths, relative to the site root, sorted."""
    static = build_out / STATIC
    if public is not None and public.is_dir():
        # The checkout is thrown away after the deploy: move, don't copy.
        shutil.move(str(public), str(static))
    for name in PAGES:
        if (build_out / name).is_file():
            static.mkdir(exist_ok=True)
            (build_out / name).replace(static / name)  # the build's page wins over public/'s
    scripts = [p for p in build_out.iterdir() if CLIENT.fullmatch(p.name)]
    if scripts:
        (static / SCRIPT_URL_DIR).mkdir(parents=True, exist_ok=True)
        for p in scripts:
            p.replace(static / SCRIPT_URL_DIR / p.name)
    if not static.is_dir():
        return []
    return sorted(str(p.relative_to(static)) for p in static.rglob("*") if p.is_file())
