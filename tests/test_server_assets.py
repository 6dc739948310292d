"""static/: the browser build and public/, arranged the way Caddy serves them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tova.served import script_dir, static_lines
from tova.server.assets import arrange_static

COMPILER = Path(__file__).parent / "fixtures" / "tova-fixture-compiler"


def test_browser_build_and_public_become_static(tmp_path):
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.tova").write_text(
        'server {\n  fn healthz() { text("ok") }\n  route GET "/healthz" => healthz\n}\n'
        'browser {\n  component App {\n    <h1>"Hi"</h1>\n  }\n}\n')
    (project / "public" / "img").mkdir(parents=True)
    (project / "public" / "img" / "logo.svg").write_text("<svg/>")
    (project / "public" / "index.html").write_text("public's own index")
    out = tmp_path / "out"
    subprocess.run([str(COMPILER), "build", "src", "--production", "--output", str(out)], cwd=project,
                   check=True, capture_output=True)
    served = arrange_static(out, project / "public")
    script = next(p for p in served if p.startswith(".tova-out/client.") and not p.endswith(".min.js"))
    assert f'src="/{script}"' in (out / "static" / "index.html").read_text()  # the build's page wins
    assert {"index.html", "404.html", "200.html", "img/logo.svg"} <= set(served)
    # The server bundle stays out of what Caddy serves; server.js still runs from the root.
    assert not any(p.startswith("server") for p in served) and (out / "server.js").is_file()


def test_no_browser_and_no_public_serves_nothing(tmp_path):
    (tmp_path / "server.js").write_text("")
    assert arrange_static(tmp_path, tmp_path / "public") == []
    assert not (tmp_path / "static").exists()


def test_the_script_goes_where_a_url_base_makes_the_page_load_it(tmp_path):
    """tova.toml `[deploy] base = "/app"`: the compiler's page loads /app/.tova-out/client.<hash>.js."""
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.tova").write_text('browser {\n  component App {\n    <h1>"Hi"</h1>\n  }\n}\n')
    (project / "tova.toml").write_text('[project]\nname = "p"\n\n[deploy]\nbase = "/app"\n')
    out = tmp_path / "out"
    subprocess.run([str(COMPILER), "build", "src", "--production", "--output", str(out)], cwd=project,
                   check=True, capture_output=True)
    served = arrange_static(out, None)
    script = next(p for p in served if p.startswith("app/.tova-out/client.") and not p.endswith(".min.js"))
    assert f'src="/{script}"' in (out / "static" / "index.html").read_text()


@pytest.mark.parametrize(("page", "folder"), [
    ('<script src="/.tova-out/client.0123456789ab.js"></script>', ".tova-out"),
    ('<script type="module" src="/shop/.tova-out/client.0123456789ab.js"></script>', "shop/.tova-out"),
    ('<script src="/client.0123456789ab.js"></script>', ""),
    ('<script src="/../etc/client.0123456789ab.js"></script>', ".tova-out"),  # never out of static/
    ('<script src="https://cdn.example/x/client.0123456789ab.js"></script>', ".tova-out"),
    ('<script src="/a b/client.0123456789ab.js"></script>', ".tova-out"),
    ("<p>no script</p>", ".tova-out"),
])
def test_script_folder_from_the_page(page, folder):
    assert script_dir(page) == folder


def test_the_plan_says_what_caddy_serves():
    both = static_lines(True, ["index.html", "robots.txt"], "/")
    assert both[0] == ("Static: browser build: / → index.html (no-cache), /404.html, /200.html, "
                       "/.tova-out/client.<hash>.js (immutable caching)")
    assert both[1] == "Static: public/, 2 files: /index.html, /robots.txt (the build's index.html wins)"
    only_public = static_lines(False, ["a.txt", "b.txt", "c.txt", "d.txt"])
    assert only_public[0] == "Static: public/, 4 files: /a.txt, /b.txt, /c.txt, …"
    assert not any("browser" in line for line in only_public)
    assert "/shop/.tova-out/client.<hash>.js" in static_lines(True, [], "/shop")[0]
    assert static_lines(False, []) == []
