"""What Caddy serves of a release (its `static/`), said the same way by the plan and made
by the deploy: the production build's browser files and the project's `public/`.

The compiler writes `index.html`, `404.html`, `200.html` and `client.<hash>.js` (+ `.min.js`)
into its output root; index.html loads the script from `<base>.tova-out/client.<hash>.js`,
base being tova.toml's `[deploy] base` (default `/`). The script goes to that URL."""

from __future__ import annotations

import re

SCRIPT_DIR = ".tova-out"
PAGES = ("index.html", "404.html", "200.html")
CLIENT = re.compile(r"client\.[0-9a-f]{12}(\.min)?\.js")
_SCRIPT_SRC = re.compile(r"""<script\b[^>]*\ssrc=["']([^"']*/)?client\.[0-9a-f]{12}(?:\.min)?\.js["']""")
_PLAIN_DIR = re.compile(r"(/[A-Za-z0-9._~-]+)*/")


def url_dir(base: str) -> str:
    """The URL folder the page loads its script from, for a `[deploy] base` (`/` → `/.tova-out/`)."""
    return (base if base.endswith("/") else base + "/") + SCRIPT_DIR + "/"


def script_dir(index_html: str) -> str:
    """Where, below the site root, the client script goes: the folder index.html loads it
    from (`.tova-out`, or `app/.tova-out` for base `/app/`). A URL that is not a plain path
    on this site (another host, `..`) gets the default: the page's own script then is not
    ours to place."""
    m = _SCRIPT_SRC.search(index_html)
    folder = m.group(1) if m and m.group(1) else ""
    if not _PLAIN_DIR.fullmatch(folder) or any(part in (".", "..") for part in folder.split("/")):
        return SCRIPT_DIR
    return folder.strip("/")


def static_lines(browser: bool, public_files: list[str], base: str = "/") -> list[str]:
    """The plan's lines about static/: what Caddy answers itself, and the rest."""
    lines = []
    if browser:
        lines.append(f"Static: browser build: / → index.html (no-cache), /404.html, /200.html, "
                     f"{url_dir(base)}client.<hash>.js (immutable caching)")
    if public_files:
        shown = ", ".join("/" + p for p in public_files[:3]) + (", …" if len(public_files) > 3 else "")
        page = " (the build's index.html wins)" if browser and "index.html" in public_files else ""
        lines.append(f"Static: public/, {len(public_files)} file{'s' if len(public_files) != 1 else ''}: "
                     f"{shown}{page}")
    if lines:
        lines.append("        served by Caddy; any other path goes to the app")
    return lines
